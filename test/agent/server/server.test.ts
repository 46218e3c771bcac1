import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import WebSocket from 'ws';
import type { Agent } from '../../../agent/agent';
import type { RunDetail, RunSummary, SequencedEvent, ServerMessage } from '../../../agent/protocol';
import { eventsOf, finished, pipelineYaml, readDiscoveryFile, startAgent, startRun, TempRepo, until } from '../../support/fixtures';

interface Answer {
  status: number;
  body: string;
  json: () => any;
}

/** A raw HTTP request, so that Host and Origin can be set as an attacker would. */
function request(port: number, method: string, route: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: route, headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, json: () => JSON.parse(text) }));
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/**
 * Bytes written straight to a socket, as no HTTP client would send them: resolves with everything
 * the server sent until it closed, and rejects on a reset. `then` writes more once `after` has come.
 */
function exchange(port: number, data: string | Buffer, then?: { after: string; data: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(data));
    let text = '';
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (then && text.includes(then.after)) {
        socket.write(then.data);
        then = undefined;
      }
    });
    socket.on('end', () => socket.end());
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

/** The status and JSON body of the last answer in what `exchange` received. */
function lastAnswer(text: string): { status: number; headers: string; body: any } {
  const at = text.lastIndexOf('HTTP/1.1 ');
  const end = text.indexOf('\r\n\r\n', at);
  return { status: Number(text.slice(at + 9, at + 12)), headers: text.slice(at, end), body: JSON.parse(text.slice(end + 4)) };
}

/** Opens a WebSocket and resolves with the HTTP status of the refusal, or 101 when it opens. */
function wsStatus(port: number, route: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${route}`, { headers });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
    ws.on('error', () => undefined);
  });
}

describe('API', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;
  let token: string;
  let port: number;
  let auth: Record<string, string>;

  before(async () => {
    repo = new TempRepo({
      'conveyor.yml': pipelineYaml(`
- name: build
  run: for i in $(seq 1 50); do echo "line $i"; done
- name: test
  needs: [build]
  run: echo tested
`),
    });
    agent = await startAgent(repo);
    const d = readDiscoveryFile(repo.dir)!;
    token = d.token;
    port = d.port;
    auth = { authorization: `Bearer ${token}` };
  });

  after(async () => {
    await agent.stop();
    repo.dispose();
  });

  it('writes a discovery file readable by its owner only', () => {
    const file = path.join(repo.dir, '.conveyor', 'agent.json');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const d = readDiscoveryFile(repo.dir)!;
    assert.equal(d.pid, process.pid);
    assert.equal(d.port, agent.port);
    assert.ok(d.token.length >= 32);
  });

  it('keeps its folder out of git without touching tracked files', () => {
    assert.equal(repo.git('status', '--porcelain'), '');
  });

  it('refuses a second agent for the same workspace', async () => {
    await assert.rejects(startAgent(repo), /an agent already runs for this workspace/);
  });

  const routes: [string, string][] = [
    ['GET', '/api/health'],
    ['GET', '/api/config'],
    ['GET', '/api/runs'],
    ['POST', '/api/runs'],
    ['GET', '/api/runs/1'],
    ['POST', '/api/runs/1/cancel'],
    ['POST', '/api/runs/1/rerun'],
    ['GET', '/api/runs/1/logs'],
    ['GET', '/api/runs/1/tests'],
    ['GET', '/api/events'],
    ['POST', '/api/validate'],
    ['GET', '/nope'],
  ];

  it('answers 401 without a token and with a wrong one, on every route', async () => {
    for (const [method, route] of routes) {
      const none = await request(port, method, route);
      assert.equal(none.status, 401, `${method} ${route} without token`);
      assert.equal(none.json().error, 'missing token');
      const wrong = await request(port, method, route, { authorization: 'Bearer nope' });
      assert.equal(wrong.status, 401, `${method} ${route} with a wrong token`);
    }
    assert.equal(await wsStatus(port, '/api/events', {}), 401);
    assert.equal(await wsStatus(port, '/api/events', { authorization: 'Bearer nope' }), 401);
    assert.equal(await wsStatus(port, '/api/events?token=nope', {}), 401);
  });

  it('answers 403 to a foreign Origin and to a rebinding Host, even with the token', async () => {
    for (const [method, route] of routes) {
      const origin = await request(port, method, route, { ...auth, origin: 'https://evil.example' });
      assert.equal(origin.status, 403, `${method} ${route} foreign origin`);
      const host = await request(port, method, route, { ...auth, host: `evil.example:${port}` });
      assert.equal(host.status, 403, `${method} ${route} rebinding host`);
      const otherPort = await request(port, method, route, { ...auth, host: `127.0.0.1:${port + 1}` });
      assert.equal(otherPort.status, 403, `${method} ${route} other port`);
    }
    assert.equal(await wsStatus(port, '/api/events', { ...auth, origin: 'http://evil.example' }), 403);
    assert.equal(await wsStatus(port, '/api/events', { ...auth, host: 'attacker.test' }), 403);
    // The editor's webviews and the agent's own pages are allowed.
    assert.equal((await request(port, 'GET', '/api/health', { ...auth, origin: 'vscode-webview://abc123' })).status, 200);
    assert.equal((await request(port, 'GET', '/api/health', { ...auth, origin: `http://localhost:${port}`, host: `localhost:${port}` })).status, 200);
  });

  it('listens on loopback only', () => {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    const rows = fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).filter((l) => l.trim());
    const listening = rows.map((l) => l.trim().split(/\s+/)).filter((c) => c[1].endsWith(`:${hex}`) && c[3] === '0A');
    assert.ok(listening.length > 0, 'the port is listening');
    for (const c of listening) assert.equal(c[1].split(':')[0], '0100007F', 'bound to 127.0.0.1');
    const tcp6 = fs.existsSync('/proc/net/tcp6') ? fs.readFileSync('/proc/net/tcp6', 'utf8') : '';
    assert.ok(!tcp6.split('\n').some((l) => l.includes(`:${hex} `) && l.includes(' 0A ')), 'not on IPv6 wildcard');
  });

  it('answers bad input with a 4xx and a message', async () => {
    const badJson = await request(port, 'POST', '/api/runs', { ...auth, 'content-type': 'application/json' }, '{"stages": [');
    assert.equal(badJson.status, 400);
    assert.match(badJson.json().error, /not valid JSON/);
    const badField = await request(port, 'POST', '/api/runs', { ...auth, 'content-type': 'application/json' }, '{"stage": "x"}');
    assert.equal(badField.status, 400);
    assert.equal(badField.json().error, 'unknown field "stage"');
    const wrongType = await request(port, 'POST', '/api/runs', { ...auth, 'content-type': 'application/json' }, '{"stages": "build"}');
    assert.equal(wrongType.status, 400);
    const unknownStage = await request(port, 'POST', '/api/runs', { ...auth, 'content-type': 'application/json' }, '{"stages": ["biuld"]}');
    assert.equal(unknownStage.status, 400);
    assert.deepEqual(unknownStage.json(), { error: 'no stage named "biuld"', fix: 'did you mean "build"?' });
    const escaping = await request(port, 'POST', '/api/runs', { ...auth, 'content-type': 'application/json' }, '{"tests": ["../../etc/passwd"]}');
    assert.equal(escaping.status, 400);
    assert.match(escaping.json().error, /"tests" must be a list of test files relative to the workspace/);
    assert.equal((await request(port, 'GET', '/api/runs/99999', auth)).status, 404);
    assert.equal((await request(port, 'GET', '/api/runs/abc', auth)).status, 400);
    assert.equal((await request(port, 'GET', '/api/runs?limit=-1', auth)).status, 400);
    assert.equal((await request(port, 'GET', '/api/events?since=x', auth)).status, 400);
    assert.equal((await request(port, 'POST', '/api/validate', { ...auth, 'content-type': 'application/json' }, '[]')).status, 400);
  });

  it('answers a "tests" list past its bounds with a 400 that names the item and the limit', async () => {
    const post = (tests: unknown) => request(port, 'POST', '/api/runs', { ...auth, 'content-type': 'application/json' }, JSON.stringify({ tests }));
    const tooMany = await post(Array.from({ length: 5001 }, (_, i) => `test/t${i}.test.js`));
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.json().error, '"tests" lists 5001 files; a run takes at most 5000');
    const tooLong = await post(['test/ok.test.js', `test/${'a'.repeat(4096)}.test.js`]);
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.json().error, '"tests"[1] is 4109 characters long; a test file path has at most 1000');
    for (const item of [1, null, ['test/a.test.js'], '']) {
      const notText = await post(['test/ok.test.js', item]);
      assert.equal(notText.status, 400, JSON.stringify(item));
      assert.equal(notText.json().error, `"tests"[1] must be a test file path, not ${JSON.stringify(item)}`);
      assert.equal(notText.json().fix, 'e.g. {"tests": ["test/math.test.js"]}');
    }
    // A NUL cannot be passed to a step in $CONVEYOR_TESTS: every stage of the run would fail.
    for (const item of ['test/a\u0000.test.js', 'test/a.test.js\ntest/b.test.js']) {
      const control = await post([item]);
      assert.equal(control.status, 400, JSON.stringify(item));
      assert.match(control.json().error, /^"tests"\[0\] holds a control character/);
    }
    assert.deepEqual(agent.store.listRuns(10), [], 'no run was started');
  });

  it('answers a request its HTTP parser refuses with JSON saying what was wrong, then closes', async () => {
    const unknown = lastAnswer(await exchange(port, `FOO /api/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n\r\n`));
    assert.equal(unknown.status, 400);
    assert.match(unknown.headers, /\r\nContent-Type: application\/json\r\n/);
    assert.match(unknown.headers, /\r\nConnection: close\b/);
    assert.deepEqual(unknown.body, { error: '"FOO" is not an HTTP method the agent knows', fix: 'the API takes GET, POST and DELETE' });
    const long = lastAnswer(await exchange(port, `GET /api/runs?x=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
    assert.equal(long.status, 431);
    assert.equal(long.body.error, "the request's address and headers are longer than 16 KiB");
    // A HEAD gets the headers only, as for every HEAD: a body would be read as the next answer.
    const head = await request(port, 'HEAD', `/api/runs?x=${'a'.repeat(20_000)}`, auth);
    assert.equal(head.status, 431);
    assert.equal(head.body, '');
    const header = lastAnswer(await exchange(port, `GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nBad Header: x\r\n\r\n`));
    assert.equal(header.status, 400);
    assert.equal(header.body.error, 'the request is not valid HTTP: Invalid header token');
    // The answer is read, not lost to a reset, while the client is still sending a large body.
    const body = Buffer.alloc(4 * 1024 * 1024, 'x');
    const withBody = lastAnswer(await exchange(port, Buffer.concat([Buffer.from(`FOO / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: ${body.length}\r\n\r\n`), body])));
    assert.equal(withBody.status, 400);
    assert.equal(withBody.body.error, '"FOO" is not an HTTP method the agent knows');
    // On a kept-alive connection, after an answer was served.
    const second = await exchange(port, `GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n\r\n`, {
      after: '"ok":true',
      data: `PROPFOO /api/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`,
    });
    assert.match(second, /^HTTP\/1\.1 200 /);
    assert.deepEqual(lastAnswer(second).body.error, '"PROPFOO" is not an HTTP method the agent knows');
    assert.equal((await request(port, 'GET', '/api/health', auth)).status, 200);
  });

  it('starts a run, serves its detail, logs and events, and validates unsaved text', async () => {
    const started = await request(port, 'POST', '/api/runs', { ...auth, 'content-type': 'application/json' }, '{}');
    assert.equal(started.status, 201);
    const run = started.json() as RunSummary;
    assert.equal(run.trigger, 'api');
    await finished(agent, run.id);
    const detail = (await request(port, 'GET', `/api/runs/${run.id}`, auth)).json() as RunDetail;
    assert.equal(detail.status, 'succeeded');
    assert.deepEqual(detail.stages.map((s) => [s.name, s.status]), [
      ['build', 'succeeded'],
      ['test', 'succeeded'],
    ]);
    const logs = await request(port, 'GET', `/api/runs/${run.id}/logs?stage=build`, auth);
    assert.match(logs.body, /line 1\n[\s\S]*line 50\n/);
    const step = await request(port, 'GET', `/api/runs/${run.id}/logs?stage=test&step=0`, auth);
    assert.equal(step.body, 'tested\n');
    assert.equal((await request(port, 'GET', `/api/runs/${run.id}/logs?stage=nope`, auth)).status, 404);
    const list = (await request(port, 'GET', '/api/runs?limit=5', auth)).json() as RunSummary[];
    assert.equal(list[0].id, run.id, 'newest first');
    const events = (await request(port, 'GET', `/api/events?since=${detail.firstSeq - 1}&limit=3`, auth)).json() as SequencedEvent[];
    assert.equal(events[0].type, 'run.queued');
    assert.equal(events.length, 3);
    const v = (await request(port, 'POST', '/api/validate', { ...auth, 'content-type': 'application/json' }, JSON.stringify({ text: 'pipeline:\n  stagez: []\n' }))).json();
    assert.ok(v.diagnostics.length > 0);
    assert.equal(v.diagnostics[0].range.start.line, 2);
  });

  it('replays every event exactly once, in order, across forced disconnects', async () => {
    const started = await agent.engine.start({ trigger: 'manual' });
    assert.ok(started.ok);
    const runId = started.value.id;
    const received: number[] = [];
    let drops = 0;
    let done = false;
    await new Promise<void>((resolve) => {
      const open = (since: number) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/api/events?since=${since}`, { headers: auth });
        ws.on('message', (data) => {
          const msg = JSON.parse(String(data)) as ServerMessage;
          if (msg.type !== 'events') return;
          for (const e of msg.events) {
            received.push(e.seq);
            // Cut the connection mid-batch, as a network drop would.
            if (received.length === 5 || received.length === 15) {
              drops++;
              ws.terminate();
              return;
            }
            if (e.type === 'run.finished' && e.run.id === runId) {
              done = true;
              ws.close();
              resolve();
              return;
            }
          }
        });
        ws.on('close', () => {
          if (!done) open(received.length ? received[received.length - 1] : since);
        });
      };
      open(0);
    });
    assert.equal(drops, 2);
    const upTo = received[received.length - 1];
    const expected = eventsOf(agent).map((e) => e.seq).filter((s) => s <= upTo);
    assert.deepEqual(received, expected);
  });

  it('ignores unknown client messages with an error message, never a crash', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/events`, { headers: auth });
    const messages: ServerMessage[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(String(d))));
    await new Promise((r) => ws.on('open', r));
    ws.send('not json');
    ws.send(JSON.stringify({ type: 'ping' }));
    await until(() => messages.some((m) => m.type === 'error'), 'an error message');
    ws.close();
    assert.equal(messages[0].type, 'hello');
    assert.equal((await request(port, 'GET', '/api/health', auth)).status, 200);
  });
});

describe('API: alerts', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;
  let alertId: number;
  const snooze = (body: string) =>
    request(agent.port, 'POST', `/api/alerts/${alertId}/snooze`, { authorization: `Bearer ${agent.discovery.token}`, 'content-type': 'application/json' }, body);

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: broken\n  run: exit 1') });
    agent = await startAgent(repo);
    await finished(agent, await startRun(agent, { trigger: 'manual' }));
    await until(() => agent.alerts.list(false).length > 0, 'the alert of the failed run');
    alertId = agent.alerts.list(false)[0].id;
  });

  after(async () => {
    await agent.stop();
    repo.dispose();
  });

  it('answers a snooze longer than a year with a 400 naming the field, the limit and an example', async () => {
    for (const value of ['"3000000000h"', '1e13', '1e308', '"8761h"']) {
      const a = await snooze(`{"for": ${value}}`);
      assert.equal(a.status, 400, `{"for": ${value}}: ${a.body}`);
      assert.deepEqual(a.json(), { error: `"for" must be at most 8760h (365 days), not ${JSON.stringify(JSON.parse(value))}`, fix: 'e.g. {"for": "24h"}; resolve an alert that no longer matters' });
    }
    assert.equal(agent.alerts.get(alertId)?.status, 'open');
    const year = await snooze('{"for": "8760h"}');
    assert.equal(year.status, 200, year.body);
    const snoozedUntil = Date.parse(year.json().snoozedUntil);
    assert.ok(Math.abs(snoozedUntil - (Date.now() + 8760 * 3_600_000)) < 60_000, year.json().snoozedUntil);
  });

  it('refuses a snooze no date can hold from any caller, instead of throwing', () => {
    for (const forMs of [1e20, Infinity, NaN, -1, 0]) {
      const r = agent.alerts.snooze(alertId, forMs, 'test');
      assert.equal(r.ok, false, String(forMs));
      if (!r.ok) assert.match(r.error.error, /^a snooze lasts more than 0 and at most 8760h \(365 days\), not /);
    }
  });
});
