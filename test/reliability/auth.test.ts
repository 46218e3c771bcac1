import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { EnvironmentStatus, RunSummary } from '../../agent/protocol';
import { PACKAGE_STAGE, serviceSource } from '../support/service';
import { TempRepo, until } from '../support/fixtures';
import { AgentProcess, removeInstances } from './agentProcess';
import { info, recordFigures, zero } from './figures';
import { apiErrorOf, rawRequest, wsHandshake, type RawAnswer } from './http';
import { isLoopback, listeningSockets } from './proc';
import { allRoutes, concretePath, key, routeTable, serverRoutes, type Route } from './routes';

const CONFIG = `
pipeline:
  stages:
${PACKAGE_STAGE}
    - name: staging
      kind: deploy
      environment: staging
      needs: [package]
environments:
  staging: { promotion: auto, start: node server.js, health: { timeout: 20s } }
`;

/** Pages of other sites, and addresses that only look like the agent's. */
const FOREIGN_ORIGINS = ['https://evil.example', 'http://evil.example', 'null', 'file://', 'http://127.0.0.1.evil.example', 'chrome-extension://abcdefghijklmnop'];

/** Host headers a DNS-rebinding page sends (its own name resolving to 127.0.0.1), or another port. */
const REBINDING_HOSTS = (port: number) => ['evil.example', `evil.example:${port}`, `127.0.0.1.nip.io:${port}`, `localhost.evil.example:${port}`, `127.0.0.1:${port + 1}`, `0.0.0.0:${port}`, `2130706433:${port}`];

/** Sends bytes as they are and resolves with everything the agent answers before it closes. */
function rawHttp10(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.end(request));
    socket.on('data', (d) => (answer += d));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('reliability: auth matrix (every route, every way in)', function () {
  this.timeout(180_000);
  const suite = 'Auth matrix';
  let repo: TempRepo;
  let agent: AgentProcess;

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, 'server.js': serviceSource('guarded') });
    agent = await AgentProcess.start(repo.dir);
    // A deployed environment: its public port is the agent's too.
    const run = await agent.client.request<RunSummary>('POST', '/runs', {});
    await until(async () => (await agent.client.request<RunSummary>('GET', `/runs/${run.id}`)).status === 'succeeded', 'staging deployed', 60_000);
  });

  after(async () => {
    await agent?.stop();
    if (repo) {
      await removeInstances(repo, ['staging']);
      repo.dispose();
    }
  });

  it('refuses every route and the WebSocket without the token, with a wrong one, from a foreign Origin and through a rebinding Host', async () => {
    const routes = allRoutes();
    const port = agent.port;
    const token = agent.token;
    const values = { id: '1', name: 'staging', sha: repo.git('rev-parse', 'HEAD').trim() };
    const wrong: string[] = [];
    let checks = 0;
    // API refusals say why in JSON; the dashboard's are pages for people.
    const expect = (what: string, answer: { status: number; body: string; headers?: RawAnswer['headers'] }, status: number, json = true) => {
      checks++;
      if (answer.status !== status) wrong.push(`${what}: ${answer.status} instead of ${status} (${answer.body.slice(0, 120)})`);
      else if (json && !apiErrorOf(answer)) wrong.push(`${what}: ${status} without a JSON message`);
      const allowed = answer.headers?.['access-control-allow-origin'];
      if (allowed && allowed !== 'null' && !allowed.startsWith('vscode-webview://') && !/^https?:\/\/(127\.0\.0\.1|localhost)(:|$)/.test(allowed)) {
        wrong.push(`${what}: Access-Control-Allow-Origin ${allowed}`);
      }
    };
    const http = (route: Route, headers: Record<string, string>, query = '') => {
      const method = route.method;
      const path = concretePath(route, values) + query;
      const body = method === 'GET' || method === 'DELETE' ? undefined : '{}';
      return rawRequest({ port, method, path, headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers }, body });
    };
    const bearer = { authorization: `Bearer ${token}` };
    for (const route of [...routes, { method: 'GET', path: '/api/no-such-route' }, { method: 'POST', path: '/nowhere' }]) {
      const name = key(route);
      if (route.method === 'WS') {
        expect(`${name} without a token`, await wsHandshake(port, route.path, {}), 401);
        expect(`${name} with a wrong token`, await wsHandshake(port, route.path, { authorization: 'Bearer nope' }), 401);
        expect(`${name} with a wrong ?token=`, await wsHandshake(port, `${route.path}?token=nope`, {}), 401);
        for (const origin of FOREIGN_ORIGINS) expect(`${name} from Origin ${origin}`, await wsHandshake(port, route.path, { ...bearer, origin }), 403);
        for (const host of REBINDING_HOSTS(port)) expect(`${name} through Host "${host}"`, await wsHandshake(port, route.path, { ...bearer, host }), 403);
        checks++;
        assert.equal((await wsHandshake(port, route.path, bearer)).status, 101, 'the WebSocket opens with the token');
        continue;
      }
      // The API says why in JSON; pages (the dashboard's) answer people with a page, and sign a
      // browser in with ?token= (the API takes it from WebSockets only).
      const api = route.path.startsWith('/api');
      expect(`${name} without a token`, await http(route, {}), 401, api);
      expect(`${name} with a wrong token`, await http(route, { authorization: `Bearer ${token.slice(0, -1)}x` }), 401, api);
      expect(`${name} with a malformed Authorization`, await http(route, { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` }), 401, api);
      if (api) expect(`${name} with the token in the query`, await http(route, {}, `${route.path.includes('?') ? '&' : '?'}token=${token}`), 401);
      for (const origin of FOREIGN_ORIGINS) {
        expect(`${name} from Origin ${origin}, with the token`, await http(route, { ...bearer, origin }), 403, api);
        expect(`${name} from Origin ${origin}, without the token`, await http(route, { origin }), 403, api);
      }
      for (const host of REBINDING_HOSTS(port)) expect(`${name} through Host "${host}"`, await http(route, { ...bearer, host }), 403, api);
      // The matrix can fail: with the token, from the agent's own address, the route is served.
      const served = await http(route, bearer);
      checks++;
      if (!route.path.includes('no-such') && route.path !== '/nowhere' && (served.status === 401 || served.status === 403)) wrong.push(`${name} refused ${served.status} with the token`);
    }
    // HTTP/1.0 lets a request go without any Host: it is no loopback address either.
    const hostless = await rawHttp10(port, `GET /api/health HTTP/1.0\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    checks++;
    if (!hostless.startsWith('HTTP/1.1 403')) wrong.push(`GET /api/health without a Host: ${hostless.split('\r\n')[0]}`);
    const dashboard = await rawRequest({ port, method: 'GET', path: '/dashboard/', headers: bearer });
    if (dashboard.status !== 404) {
      expect('GET /dashboard/ without a token', await rawRequest({ port, method: 'GET', path: '/dashboard/' }), 401, false);
      for (const origin of FOREIGN_ORIGINS) expect(`GET /dashboard/ from Origin ${origin}`, await rawRequest({ port, method: 'GET', path: '/dashboard/', headers: { ...bearer, origin } }), 403, false);
      for (const host of REBINDING_HOSTS(port)) expect(`GET /dashboard/ through Host "${host}"`, await rawRequest({ port, method: 'GET', path: '/dashboard/', headers: { ...bearer, host } }), 403, false);
    }
    recordFigures([
      info(suite, 'routes and checks', `${routes.length} routes (${routeTable().length} from the table of agent/protocol.ts${routes.length > routeTable().length ? `, ${routes.length - routeTable().length} more the server registers` : ''})${dashboard.status !== 404 ? ' and /dashboard/' : ''}; ${checks.toLocaleString('en-US')} requests`),
      zero(suite, 'routes answering something else than 401 (no token, wrong token) or 403 (foreign Origin, rebinding Host)', wrong.length),
    ]);
    assert.deepEqual(wrong, []);
  });

  it('keeps the discovery file private and listens on loopback only (the API and the environments)', async () => {
    const mode = fs.statSync(repo.path('.conveyor', 'agent.json')).mode & 0o777;
    const dirMode = fs.statSync(repo.path('.conveyor')).mode & 0o777;
    const envs = await agent.client.request<EnvironmentStatus[]>('GET', '/environments');
    const publicPort = Number(new URL(envs[0].url!).port);
    const sockets = listeningSockets(agent.pid);
    const exposed = sockets.filter((s) => !isLoopback(s.address));
    recordFigures([
      info(suite, 'discovery file mode', `0${mode.toString(8)} (folder 0${dirMode.toString(8)})`),
      zero(suite, 'listening sockets of the agent not on loopback', exposed.length),
    ]);
    assert.equal(mode, 0o600);
    assert.equal(dirMode & 0o077, 0, '.conveyor is not readable by others');
    assert.ok(agent.token.length >= 32);
    assert.ok(sockets.some((s) => s.port === agent.port), `the API port among ${JSON.stringify(sockets)}`);
    assert.ok(sockets.some((s) => s.port === publicPort), `the environment's public port among ${JSON.stringify(sockets)}`);
    assert.deepEqual(exposed, []);
  });

  it('documents every route the server serves in the route table of agent/protocol.ts', () => {
    const table = new Set(routeTable().map(key));
    const missing = serverRoutes().map(key).filter((k) => !table.has(k));
    recordFigures([zero(suite, 'routes served but missing from the route table (so clients and this suite would not know them)', missing.length)]);
    assert.deepEqual(missing, []);
  });
});
