'use strict';
// release-checks: a tiny item service. /healthz answers its health, /api/items the items as
// JSON, /api/time the time in $TZ. PORT picks the port (default 8080).
const http = require('node:http');
const { version } = require('../package.json');

const ITEMS = [
  { id: 1, name: 'widget' },
  { id: 2, name: 'gadget' },
];

function createServer() {
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok', version });
    if (url.pathname === '/api/items') return send(res, 200, { items: ITEMS });
    if (url.pathname === '/api/time') return send(res, 200, { time: localTime(new Date(0)) });
    return send(res, 404, { error: `no route ${url.pathname}` });
  });
}

/** The time of day in the process's time zone, as HH:MM. */
function localTime(date) {
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

if (require.main === module) {
  const port = Number(process.env.PORT ?? 8080);
  createServer().listen(port, '127.0.0.1', function () {
    console.log(`release-checks ${version} listening on http://127.0.0.1:${this.address().port}`);
  });
}

module.exports = { createServer, localTime };
