import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import WebSocket from 'ws';
import type { RunSummary } from '../../agent/protocol';
import { PACKAGE_STAGE, serviceSource } from '../support/service';
import { TempRepo, until } from '../support/fixtures';
import { AgentProcess, removeInstances } from './agentProcess';
import { info, recordFigures, zero } from './figures';
import { apiErrorOf, rawRequest, type RawAnswer } from './http';
import { Random, scaled, seedOf } from './mode';
import { allRoutes, concretePath, encodeText, type Route } from './routes';

const CONFIG = `
pipeline:
  stages:
${PACKAGE_STAGE}
    - name: broken
      run: echo "this stage fails on purpose"; exit 1
      when: [manual]
environments:
  staging: { promotion: auto, start: node server.js, health: { timeout: 10s } }
  production: { promotion: manual, start: node server.js, health: { timeout: 10s } }
  preview: { preview: true, start: node server.js, health: { timeout: 10s } }
`;

const METHODS_NODE_KNOWS: readonly string[] = http.METHODS;
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'PROPFIND', 'FOO', 'TRACE'];
const QUERY_KEYS = ['since', 'limit', 'stage', 'attempt', 'step', 'all', 'days', 'from', 'to', 'weeks', 'thresholdPct', 'before', 'environment', 'kinds', 'text', 'logs', 'deployment', 'seq', 'maxCommits', 'token', '__proto__', 'constructor'];
const BODY_KEYS = ['stages', 'commit', 'workingTree', 'trigger', 'tests', 'text', 'enabled', 'run', 'stage', 'via', 'from', 'to', 'dryRun', 'paused', 'for', 'reason', 'branch', 'template', '__proto__', 'constructor', 'extra'];
const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'application/json; charset=utf-16', 'application/json; charset=nope', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/*+json', ''];

/** Values of every JSON type, at their edges, and the forms a field should not take. */
function value(rnd: Random, depth = 0): unknown {
  switch (rnd.int(0, 11)) {
    case 0:
    case 1:
      return rnd.pick([0, -1, 1, 2, 1.5, 1e13, 9e15, 1e308, -1e308, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 3]);
    case 2:
      return rnd.pick(['', 'build', 'package', 'broken', 'staging', 'production', 'preview', 'main', 'HEAD', 'manual', 'api', 'cli', '1h', '30m', '99999999h', '3000000000h', '-1s', '0s']);
    case 3:
      return rnd.pick(['../../etc/passwd', '/etc/passwd', '--upload-pack=touch /tmp/x', '-x', '$(id)', '`id`', '\u0000', '\ud800', '😀', '%00', 'a\nb', 'x'.repeat(rnd.int(201, 5000))]);
    case 4:
      return 'y'.repeat(rnd.pick([100_000, 600_000]));
    case 5:
      return rnd.chance(0.5);
    case 6:
      return null;
    case 7:
      return depth > 3 ? [] : Array.from({ length: rnd.int(0, 4) }, () => value(rnd, depth + 1));
    case 8:
      return depth > 3 ? {} : object(rnd, depth + 1);
    case 9:
      return Array.from({ length: rnd.pick([201, 5001]) }, (_, i) => `s${i}`);
    case 10:
      return rnd.pick(['test/a.test.js', 'src/../../x', '/abs', '']);
    default:
      return rnd.pick(['build', 'staging', 'feature/x', 'api', true, 1, '1']);
  }
}

/** An object of the route's own fields (most of the time) or of any field. */
function object(rnd: Random, depth = 0, fields: readonly string[] = BODY_KEYS): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  // Own properties, so that "__proto__" is a key of the JSON sent and not the object's prototype.
  for (let n = rnd.int(0, 3); n > 0; n--) Object.defineProperty(o, rnd.pick(fields), { value: value(rnd, depth), enumerable: true, writable: true, configurable: true });
  return o;
}

/** A value as text in a path or query. */
function text(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined');
}

/** A body: a JSON object of the route's fields, other JSON, broken JSON, or something else. */
function body(rnd: Random, route: Route | undefined): string | Buffer | undefined {
  // Most bodies are the route's own: its fields, each with any value, reach its checks.
  if (route?.fields && rnd.chance(0.6)) return JSON.stringify(object(rnd, 0, route.fields));
  switch (rnd.int(0, 9)) {
    case 0:
      return undefined;
    case 1:
      return rnd.pick(['', '{', '{"stages": [', '[]', '"x"', '1', 'null', 'true', '{"a":1,}', 'NaN', '{"a": 1e999}', '\u0000', '['.repeat(100_000), '{"a":'.repeat(20_000)]);
    case 2:
      return Buffer.from(Array.from({ length: rnd.int(1, 64) }, () => rnd.int(0, 255)));
    case 3:
      return JSON.stringify({ text: 'x'.repeat(1_100_000) });
    default:
      return JSON.stringify(rnd.chance(0.9) ? object(rnd, 0, route?.fields && rnd.chance(0.8) ? route.fields : BODY_KEYS) : value(rnd));
  }
}

/** A path: a route of the API with its placeholders filled (well or badly), or one that is not there. */
function pathOf(rnd: Random, routes: Route[], ids: Ids): { path: string; route: Route | undefined } {
  if (rnd.chance(0.15)) {
    return {
      route: undefined,
      path: rnd.pick([
        '/',
        '/api',
        '/api/',
        '/api/nope',
        '/api/runs/1/nope',
        '/api/../etc/passwd',
        '/api/runs/%E0%A4%A',
        '/api/runs/%00',
        '/%2e%2e/%2e%2e/etc/passwd',
        '/dashboard/',
        `/api/${'a'.repeat(rnd.int(100, 8000))}`,
        '/api/environments//deploy',
        '//api//runs',
        '/api/runs?limit=1&limit=2',
        '/API/RUNS',
        '/api/events/',
        '*',
      ]),
    };
  }
  const route = rnd.pick(routes);
  let p = fillPath(rnd, route, ids, 0.7);
  if (rnd.chance(0.6)) {
    const q = Array.from({ length: rnd.int(1, 4) }, () => `${rnd.pick(QUERY_KEYS)}=${encodeText(text(value(rnd)).slice(0, rnd.chance(0.95) ? 40 : 10_000))}`);
    p += `?${q.join('&')}`;
  }
  return { path: p, route };
}

/** Node's own answer to a request its parser refused (400, 431): a status line and "Connection: close", nothing else. */
function bareRefusal(a: RawAnswer): boolean {
  return a.body === '' && Object.keys(a.headers).join() === 'connection';
}

/**
 * The route's path with its placeholders filled: with probability `known` an id that exists (of
 * what the segment before it names: runs, alerts, environments...), else any value.
 */
function fillPath(rnd: Random, route: Route, ids: Ids, known: number): string {
  const segments = route.path.split('/');
  const fill = (name: string) => {
    const pool = ids[segments[segments.indexOf(`:${name}`) - 1]];
    return rnd.chance(known) && pool?.length ? rnd.pick(pool) : text(value(rnd)).slice(0, rnd.chance(0.9) ? 60 : 20_000);
  };
  return concretePath(route, Object.fromEntries(['id', 'name', 'sha'].map((n) => [n, fill(n)])));
}

/** Values at the edges of every type, each given to every field of every route once. */
const EDGES: unknown[] = [null, true, 0, -1, 1.5, 1e13, 1e308, '', 'x'.repeat(10_000), '3000000000h', '../../etc/passwd', '\u0000', [], {}, ['a', 1], 'ünïcødé 😀'];

/** The systematic part of the fuzz: each field of each route's body alone at each edge value. */
function edgeSweep(routes: Route[]): { route: Route; body: string }[] {
  return routes.flatMap((route) => (route.fields ?? []).flatMap((field) => EDGES.map((edge) => ({ route, body: JSON.stringify({ [field]: edge }) }))));
}

/** Ids that exist, by the collection they are in: `runs`, `alerts`, `environments`, `commits`... */
type Ids = Record<string, string[]>;

/** One WebSocket attempt of any shape: where it connects, what it sends, and how it leaves. */
async function wsAttempt(rnd: Random, port: number, token: string): Promise<{ status: number; body: string } | 'opened'> {
  const since = rnd.pick(['0', '5', '-1', 'abc', '1e3', '', '99999999999999999999', String(Number.MAX_SAFE_INTEGER), '1.5']);
  const where = rnd.pick([`/api/events?since=${since}`, `/api/events?since=${since}&token=${token}`, '/api/events', '/api/nope', '/', `/api/events?since=${since}&since=1`]);
  const headers: Record<string, string> = rnd.chance(0.8) ? { authorization: `Bearer ${token}` } : {};
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${where}`, { headers, handshakeTimeout: 10_000, maxPayload: 256 * 1024 * 1024 });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    ws.on('error', () => resolve({ status: 0, body: 'network error' }));
    ws.on('open', () => {
      for (let n = rnd.int(0, 5); n > 0; n--) {
        const frame = rnd.pick<string | Buffer>(['not json', '{"type":"ping"}', '{"type":"subscribe"}', 'null', '[]', Buffer.from([0, 1, 2, 255]), 'z'.repeat(70 * 1024), JSON.stringify({ type: 'x'.repeat(1000) })]);
        ws.send(frame);
      }
      if (rnd.chance(0.3)) ws.ping();
      setTimeout(() => {
        if (rnd.chance(0.5)) ws.terminate();
        else ws.close(rnd.pick([1000, 1001, 4000]));
        resolve('opened');
      }, rnd.int(0, 50));
    });
  });
}

describe('reliability: API fuzz (random requests to every route and the WebSocket)', function () {
  const REQUESTS = scaled(2000, 20_000);
  this.timeout(scaled(180_000, 1_800_000));
  let repo: TempRepo;
  let agent: AgentProcess;

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, 'server.js': serviceSource('fuzzed') });
    agent = await AgentProcess.start(repo.dir);
    // Something of each kind to aim at: a green run with an artifact, a failed one (an alert).
    const green = await agent.client.request<RunSummary>('POST', '/runs', { stages: ['package'] });
    await until(async () => (await agent.client.request<RunSummary>('GET', `/runs/${green.id}`)).status === 'succeeded', 'a green run');
    const red = await agent.client.request<RunSummary>('POST', '/runs', { stages: ['broken'] });
    await until(async () => (await agent.client.request<RunSummary>('GET', `/runs/${red.id}`)).status === 'failed', 'a failed run');
    await until(async () => (await agent.client.request<unknown[]>('GET', '/alerts')).length > 0, 'an alert for the failed run');
  });

  after(async () => {
    await agent?.stop();
    if (repo) {
      await removeInstances(repo, ['staging', 'production', 'preview', 'preview-feature-x', 'preview-main']);
      repo.dispose();
    }
  });

  it(`answers ${REQUESTS.toLocaleString('en-US')} random requests with a 4xx and a JSON message (or a 2xx), never a 5xx, and stays up`, async () => {
    const rnd = new Random(seedOf('api-fuzz'));
    console.log(`      seed ${rnd.seed}`);
    const routes = allRoutes().filter((r) => r.method !== 'WS');
    const head = repo.git('rev-parse', 'HEAD').trim();
    const ids: Ids = {
      runs: ['1', '2', '#1'],
      alerts: ['1'],
      deployments: ['1', '2'],
      approvals: ['1'],
      environments: ['staging', 'production', 'preview', 'nope'],
      previews: ['preview-feature-x', 'nope'],
      commits: [head, head.slice(0, 7)],
    };
    const counts = { '2xx': 0, redirects: 0, '4xx': 0, '5xx': 0, other: 0, unsent: 0, ws: 0, networkErrors: 0, bare: 0, unexplained: 0 };
    const problems: string[] = [];
    const byRoute = new Set<string>();
    let sent = 0;

    const sweep = edgeSweep(routes);
    let swept = 0;
    const one = async (): Promise<void> => {
      if (swept >= sweep.length && rnd.chance(0.05)) {
        counts.ws++;
        const r = await wsAttempt(rnd, agent.port, agent.token);
        if (r !== 'opened' && r.status !== 0 && (r.status >= 500 || !apiErrorOf(r))) problems.push(`WebSocket refused with ${r.status}: ${r.body.slice(0, 200)}`);
        if (r !== 'opened' && r.status >= 500) counts['5xx']++;
        return;
      }
      const edge = swept < sweep.length ? sweep[swept++] : undefined;
      const { path, route } = edge ? { path: fillPath(rnd, edge.route, ids, 1), route: edge.route } : pathOf(rnd, routes, ids);
      const method = edge ? edge.route.method : route && rnd.chance(0.75) ? route.method : rnd.pick(METHODS);
      const headers: Record<string, string> = { authorization: `Bearer ${agent.token}` };
      // A body the route does not read stays small: Node drops the connection under an unread large
      // body once it has answered, which says nothing about the agent.
      const reads = !['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE'].includes(method);
      const payload = edge ? edge.body : reads ? body(rnd, route) : rnd.chance(0.1) ? JSON.stringify(object(rnd, 3, route?.fields ?? BODY_KEYS)).slice(0, 4096) : undefined;
      const type = edge ? 'application/json' : rnd.pick(CONTENT_TYPES);
      if (type) headers['content-type'] = type;
      if (rnd.chance(0.1)) headers['content-encoding'] = rnd.pick(['gzip', 'deflate', 'br', 'identity', 'x-nope']);
      if (rnd.chance(0.05)) headers.accept = rnd.pick(['text/html', '*/*', 'application/xml']);
      if (rnd.chance(0.05)) headers['x-forwarded-for'] = '203.0.113.7';
      // Node's client writes a GET's or DELETE's body without a length unless told: a request no server can read.
      if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
      let answer: RawAnswer;
      try {
        answer = await rawRequest({ port: agent.port, method, path, headers, body: payload, timeoutMs: 60_000 });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        // The client refused to send it (a path or method Node will not write): not the agent's doing.
        if (code.startsWith('ERR_')) {
          counts.unsent++;
          return;
        }
        // A method Node's parser does not know, or a head over its size limit, is refused before the
        // body is read; the connection may then be reset under a body still being written.
        if (!METHODS_NODE_KNOWS.includes(method) || path.length > http.maxHeaderSize) {
          counts.bare++;
          problems.push(`connection reset by Node's HTTP parser, without a JSON message, for ${method} ${path.slice(0, 100)}`);
          return;
        }
        counts.networkErrors++;
        problems.push(`${method} ${path.slice(0, 120)}: ${(e as Error).message}`);
        return;
      }
      sent++;
      if (route) byRoute.add(`${route.method} ${route.path}`);
      const s = answer.status;
      if (s >= 500) {
        counts['5xx']++;
        problems.push(`${s} for ${method} ${path.slice(0, 160)} ${headers['content-type'] ?? ''} ${payload === undefined ? '' : String(payload).slice(0, 160)}: ${answer.body.slice(0, 300)}`);
      } else if (s >= 400) {
        counts['4xx']++;
        if (method === 'HEAD' || apiErrorOf(answer)) return;
        if (bareRefusal(answer)) {
          counts.bare++;
          problems.push(`${s} from Node's HTTP parser, without a JSON message, for ${method} ${path.slice(0, 100)} (${path.length} characters)`);
        } else if (path.startsWith('/api')) {
          counts.unexplained++;
          problems.push(`${s} without a JSON message for ${method} ${path.slice(0, 160)}: ${answer.body.slice(0, 200)}`);
        }
      } else if (s >= 200 && s < 300) {
        counts['2xx']++;
      } else if (s >= 300 && s < 400 && !path.startsWith('/api')) {
        // The dashboard's pages redirect (a sign-in, a missing slash).
        counts.redirects++;
      } else {
        counts.other++;
        problems.push(`${s} for ${method} ${path.slice(0, 160)}`);
      }
    };

    // Ids worth aiming at: the alerts, runs and approvals the agent has now (refreshed as it goes),
    // with an open alert kept around, as a failed run makes one.
    const refreshIds = async () => {
      const alerts = await agent.client.request<{ id: number; status: string }[]>('GET', '/alerts?all=1');
      if (!alerts.some((a) => a.status === 'open')) await agent.client.request('POST', '/runs', { stages: ['broken'] });
      const runs = await agent.client.request<RunSummary[]>('GET', '/runs?limit=5');
      const approvals = await agent.client.request<{ id: number }[]>('GET', '/approvals');
      ids.alerts = alerts.filter((a) => a.status !== 'resolved').map((a) => String(a.id)).slice(0, 3);
      ids.runs = [...new Set(['1', '#1', ...runs.map((r) => String(r.id))])];
      ids.approvals = ['1', ...approvals.map((a) => String(a.id))];
    };
    await refreshIds();
    const lanes = 4;
    let issued = 0;
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        while (issued < REQUESTS && agent.alive) {
          if (++issued % 200 === 0) await refreshIds();
          await one();
        }
      }),
    );
    const health = await rawRequest({ port: agent.port, method: 'GET', path: '/api/health', headers: { authorization: `Bearer ${agent.token}` } }).catch((e: Error) => ({ status: 0, body: e.message }) as RawAnswer);
    const warnings = agent.log().split('\n').filter((l) => /request failed/.test(l));

    const suite = 'API fuzz';
    recordFigures([
      info(suite, 'requests', `${issued.toLocaleString('en-US')} (${sweep.length} of them each field of each route at each of ${EDGES.length} edge values; ${counts.ws} WebSocket attempts; ${byRoute.size} of ${routes.length} routes hit; ${counts['2xx']} 2xx, ${counts.redirects} dashboard redirects, ${counts['4xx']} 4xx; ${counts.unsent} not sendable by Node's client)`),
      zero(suite, '5xx answers', counts['5xx']),
      zero(suite, '4xx answers of the API without a JSON message', counts.unexplained),
      zero(suite, "4xx refusals by Node's HTTP parser without a JSON message (unknown method, over-long head)", counts.bare),
      zero(suite, 'other answers (1xx/3xx) and dropped connections', counts.other + counts.networkErrors),
      zero(suite, 'agent crashes (process exited, or /api/health not 200 after)', agent.alive && health.status === 200 ? 0 : 1),
    ]);
    assert.ok(agent.alive, `the agent exited: ${agent.log().slice(-2000)}`);
    assert.equal(health.status, 200);
    assert.deepEqual([...new Set(problems)].sort((a, b) => Number(a.includes("Node's")) - Number(b.includes("Node's"))).slice(0, 20), [], `${problems.length} problems; agent warnings: ${warnings.slice(0, 5).join('\n')}`);
    assert.ok(byRoute.size >= routes.length * 0.9, `only ${byRoute.size} of ${routes.length} routes were hit`);
  });
});
