/**
 * The tiny HTTP service the deploy tests ship: `/` answers the greeting, `/healthz` answers 200
 * (or 500 when unhealthy); it listens on $PORT, as a runtime starts it.
 */
export function serviceSource(greeting: string, opts: { healthy?: boolean } = {}): string {
  const healthy = opts.healthy ?? true;
  return `
const http = require('node:http');
http.createServer((req, res) => {
  if (req.url === '/healthz') { res.writeHead(${healthy ? 200 : 500}); return res.end('${healthy ? 'ok' : 'sick'}'); }
  res.end(${JSON.stringify(greeting)});
}).listen(Number(process.env.PORT), '127.0.0.1');
`;
}

/** The stage that packages server.js as the run's files artifact, as YAML under `stages:` (4 spaces in). */
export const PACKAGE_STAGE = `    - name: package
      run: mkdir -p dist && tar -czf dist/app.tgz server.js
      artifacts: [dist/app.tgz]`;
