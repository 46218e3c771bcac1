import * as http from 'node:http';
import type { Agent } from '../../agent/agent';
import type { TempRepo } from './fixtures';

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

/** GET on a deployed service: its status and body; rejects when nothing answers. */
export function serviceGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** The stage that packages server.js as the run's files artifact, as YAML under `stages:` (4 spaces in). */
export const PACKAGE_STAGE = `    - name: package
      run: mkdir -p dist && tar -czf dist/app.tgz server.js
      artifacts: [dist/app.tgz]`;

/** The stage that deploys the package to the environment `staging`, as YAML under `stages:` (4 spaces in). */
export const STAGING_STAGE = `    - name: staging
      kind: deploy
      environment: staging
      needs: [package]`;

/**
 * The end of a deploy test: removes the environments' instances from the process runtime (they
 * outlive the agent by design), stops the agent and deletes the repository.
 */
export async function stopDeployTest(agent: Agent, repo: TempRepo, environments: string[]): Promise<void> {
  const runtime = agent.runtimes.get('process');
  for (const e of environments) if (runtime.ok) await runtime.value.remove(e).catch(() => undefined);
  await agent.stop();
  repo.dispose();
}
