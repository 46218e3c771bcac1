import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import WebSocket from 'ws';
import type { Agent } from '../../../agent/agent';
import type { RunDetail, RunSummary, SequencedEvent, ServerMessage } from '../../../agent/protocol';
import { eventsOf, finished, pipelineYaml, readDiscoveryFile, startAgent, TempRepo, until } from '../../support/fixtures';

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
