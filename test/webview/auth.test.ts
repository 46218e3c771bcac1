/**
 * The dashboard's sign-in and the rules around it, over raw HTTP against a real agent (so that
 * Origin, Host, Cookie and Sec-Fetch-Site can be set as a browser, or an attacker, would): the
 * token-to-cookie exchange, where the cookie is accepted and where it is not, tokens from editor
 * webviews (CORS), the pages' CSP nonces, and the files served.
 */
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import WebSocket from 'ws';
import type { Agent } from '../../agent/agent';
import { pipelineYaml, startAgent, TempRepo } from '../support/fixtures';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, method: string, route: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: route, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function wsStatus(port: number, headers: Record<string, string>, query = ''): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/events${query}`, { headers });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
    ws.on('error', () => undefined);
  });
}

describe('dashboard sign-in, cookie and CORS rules', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;
  let port: number;
  let token: string;
  let cookie: string;

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: build\n  run: echo built') });
    agent = await startAgent(repo);
    port = agent.port;
    token = agent.discovery.token;
    cookie = `conveyor_${port}=${token}`;
  });

  after(async () => {
    await agent?.stop();
    repo?.dispose();
  });

  it('trades the token in the address for an HttpOnly, SameSite=Strict cookie and the same address without it', async () => {
    const res = await request(port, 'GET', `/dashboard/run.html?run=3&token=${encodeURIComponent(token)}`);
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, '/dashboard/run.html?run=3');
    assert.deepEqual(res.headers['set-cookie'], [`conveyor_${port}=${token}; HttpOnly; SameSite=Strict; Path=/`]);
    assert.equal(res.headers['referrer-policy'], 'no-referrer');
    const bare = await request(port, 'GET', `/dashboard?token=${encodeURIComponent(token)}`);
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.location, `/dashboard/?token=${encodeURIComponent(token)}`);
    const wrong = await request(port, 'GET', '/dashboard/?token=nope');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
    assert.match(wrong.body, /conveyor dashboard/);
  });

  it('serves each page with a fresh nonce that its CSP names, and only the built files', async () => {
    const nonces = new Set<string>();
    for (const address of ['/dashboard/', '/dashboard/run.html', '/dashboard/metrics.html', '/dashboard/timeline.html']) {
      const res = await request(port, 'GET', address, { cookie });
      assert.equal(res.status, 200, address);
      const csp = String(res.headers['content-security-policy']);
      const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
      assert.ok(nonce, csp);
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.match(res.body, new RegExp(`<script defer src="\\w+\\.js" nonce="${nonce.replace(/[+/]/g, (c) => `\\${c}`)}"></script>`));
      nonces.add(nonce);
    }
    assert.equal(nonces.size, 4, 'a new nonce every time');
    const js = await request(port, 'GET', '/dashboard/timeline.js', { cookie });
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    const css = await request(port, 'GET', '/dashboard/run.css', { cookie });
    assert.match(String(css.headers['content-type']), /^text\/css/);
    for (const address of ['/dashboard/..%2Fcli.js', '/dashboard/package.json', '/dashboard/other.html', '/dashboard/run.ts']) {
      assert.equal((await request(port, 'GET', address, { cookie })).status, 404, address);
    }
    assert.equal((await request(port, 'POST', '/dashboard/', { cookie })).status, 405);
  });

  it('takes the cookie from the agent’s own pages only', async () => {
    const own = `http://127.0.0.1:${port}`;
    assert.equal((await request(port, 'GET', '/api/health', { cookie })).status, 200);
    assert.equal((await request(port, 'GET', '/api/health', { cookie, origin: own, 'sec-fetch-site': 'same-origin' })).status, 200);
    assert.equal((await request(port, 'GET', '/api/health', { cookie, 'sec-fetch-site': 'none' })).status, 200);
    // Another page on this machine, another site, or a rebinding Host: refused.
    assert.equal((await request(port, 'GET', '/api/health', { cookie, origin: 'http://127.0.0.1:1' })).status, 401);
    assert.equal((await request(port, 'GET', '/api/health', { cookie, 'sec-fetch-site': 'same-site' })).status, 401);
    assert.equal((await request(port, 'GET', '/api/health', { cookie, 'sec-fetch-site': 'cross-site' })).status, 401);
    assert.equal((await request(port, 'GET', '/api/health', { cookie, origin: 'https://evil.example' })).status, 403);
    assert.equal((await request(port, 'GET', '/api/health', { cookie, host: `evil.example:${port}` })).status, 403);
    // Another agent's cookie (another port), or an earlier token: refused, with what to do.
    assert.equal((await request(port, 'GET', '/api/health', { cookie: `conveyor_${port + 1}=${token}` })).status, 401);
    const old = await request(port, 'GET', '/api/health', { cookie: `conveyor_${port}=old-token` });
    assert.equal(old.status, 401);
    assert.match(JSON.parse(old.body).fix, /conveyor dashboard/);
    // The WebSocket too.
    assert.equal(await wsStatus(port, { cookie, origin: own }), 101);
    assert.equal(await wsStatus(port, { cookie, origin: 'http://127.0.0.1:1' }), 401);
  });

  it('lets editor webviews call with the token: CORS preflights answered, loopback and vscode-webview origins named', async () => {
    for (const origin of ['vscode-webview://1a2b3c', 'http://127.0.0.1:8080']) {
      const pre = await request(port, 'OPTIONS', '/api/runs', { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' });
      assert.equal(pre.status, 204, origin);
      assert.equal(pre.headers['access-control-allow-origin'], origin);
      assert.match(String(pre.headers['access-control-allow-headers']), /authorization/);
      const res = await request(port, 'GET', '/api/runs', { origin, authorization: `Bearer ${token}` });
      assert.equal(res.status, 200, origin);
      assert.equal(res.headers['access-control-allow-origin'], origin);
      assert.equal(await wsStatus(port, { origin }, `?token=${encodeURIComponent(token)}`), 101);
      // Without the token, nothing: the cookie does not count from there.
      assert.equal((await request(port, 'GET', '/api/runs', { origin, cookie })).status, 401);
    }
    const evil = await request(port, 'OPTIONS', '/api/runs', { origin: 'https://evil.example', 'access-control-request-method': 'GET' });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
    assert.equal((await request(port, 'GET', '/api/runs', { origin: 'https://evil.example', authorization: `Bearer ${token}` })).status, 403);
  });
});
