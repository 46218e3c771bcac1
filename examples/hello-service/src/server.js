'use strict';
// hello-service: answers / with a greeting, /healthz with its health and /version with its
// version. PORT picks the port (default 8080); 0 picks a free one.
const http = require('node:http');
const { version } = require('../package.json');

function createServer() {
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/healthz') {
      return send(res, 200, { status: 'ok' });
    }
    if (url.pathname === '/version') {
      return send(res, 200, { version });
    }
    if (url.pathname === '/') {
      const name = url.searchParams.get('name') || 'world';
      return send(res, 200, { message: greet(name) });
    }
    return send(res, 404, { error: `no route ${url.pathname}` });
  });
}

function greet(name) {
  return `hello, ${name.slice(0, 100)}`;
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

if (require.main === module) {
  const port = Number(process.env.PORT ?? 8080);
  createServer().listen(port, '127.0.0.1', function () {
    console.log(`hello-service ${version} listening on http://127.0.0.1:${this.address().port}`);
  });
}

module.exports = { createServer, greet };
