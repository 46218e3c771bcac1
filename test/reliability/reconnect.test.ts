import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import WebSocket from 'ws';
import type { Agent } from '../../agent/agent';
import type { SequencedEvent, ServerMessage } from '../../agent/protocol';
import { followEvents } from '../../extension/agent/eventStream';
import { eventsOf, finished, pipelineYaml, sleep, startAgent, startRun, TempRepo, until } from '../support/fixtures';
import { recordFigures, info, zero } from './figures';
import { Random, scaled, seedOf } from './mode';

/** Four stages printing side by side: a steady stream of log, step and stage events. */
const CONFIG = pipelineYaml(
  ['a', 'b', 'c', 'd']
    .map((s) => `- name: ${s}\n  run: for i in $(seq 1 150); do echo "${s} line $i"; sleep 0.004; done`)
    .join('\n'),
);

/**
 * A TCP relay between clients and the agent whose connections the suite cuts at will: with a
 * reset (as a dropped network does) or a plain close (as a proxy timing out does).
 */
class CuttingRelay {
  private server!: net.Server;
  readonly pairs = new Set<[net.Socket, net.Socket]>();
  port = 0;

  constructor(private readonly target: number) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      const drop = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Cuts one connection; false when none is open. */
  cut(rnd: Random): boolean {
    const pairs = [...this.pairs];
    if (pairs.length === 0) return false;
    const pair = rnd.pick(pairs);
    this.pairs.delete(pair);
    const [client, upstream] = pair;
    if (rnd.chance(0.5)) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    } else {
      client.destroy();
      upstream.destroy();
    }
    return true;
  }

  async close(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A client as a view would be: it applies events and, after any drop, resumes from the last one. */
interface Client {
  readonly name: string;
  /** Every event applied, in the order applied. */
  readonly applied: SequencedEvent[];
  readonly connections: number;
  /** Forces a disconnect from the client's side; false when it is not connected. */
  drop(): boolean;
  stop(): Promise<void>;
}

/** The extension's own stream client (extension/agent/eventStream.ts), reconnecting as the extension does. */
function extensionClient(name: string, agent: Agent, token: string): Client {
  const applied: SequencedEvent[] = [];
  let controller: AbortController | undefined;
  let open = false;
  let stopped = false;
  let connections = 0;
  const lastSeq = () => (applied.length ? applied[applied.length - 1].seq : 0);
  const loop = (async () => {
    while (!stopped) {
      controller = new AbortController();
      connections++;
      await followEvents(
        { port: agent.port, token, pid: process.pid, version: '', workspace: agent.workspace },
        lastSeq,
        {
          onHello: () => {
            open = true;
            return true;
          },
          onEvents: (events) => applied.push(...events),
        },
        controller.signal,
      );
      open = false;
    }
  })();
  return {
    name,
    applied,
    get connections() {
      return connections;
    },
    drop: () => {
      if (!open || !controller) return false;
      open = false;
      controller.abort();
      return true;
    },
    stop: async () => {
      stopped = true;
      controller?.abort();
      await loop;
    },
  };
}

/**
 * A bare WebSocket client through the relay: it keeps every event the agent sends, unfiltered,
 * so a repeat or a gap in what the agent sends shows in `applied`.
 */
function relayClient(name: string, relay: CuttingRelay, agentPort: number, token: string): Client {
  const applied: SequencedEvent[] = [];
  let ws: WebSocket | undefined;
  let stopped = false;
  let connections = 0;
  const connect = () => {
    const since = applied.length ? applied[applied.length - 1].seq : 0;
    connections++;
    // Host names the agent: the relay is only a wire.
    const socket = new WebSocket(`ws://127.0.0.1:${relay.port}/api/events?since=${since}`, {
      headers: { authorization: `Bearer ${token}`, host: `127.0.0.1:${agentPort}` },
    });
    ws = socket;
    socket.on('message', (data) => {
      const msg = JSON.parse(String(data)) as ServerMessage;
      if (msg.type === 'events') applied.push(...msg.events);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!stopped) setImmediate(connect);
    });
  };
  connect();
  return {
    name,
    applied,
    get connections() {
      return connections;
    },
    drop: () => false,
    stop: async () => {
      stopped = true;
      ws?.terminate();
    },
  };
}

/** How a client's events differ from the agent's: missing, repeated, out of order, changed. */
function compare(applied: SequencedEvent[], expected: SequencedEvent[]): { lost: number; duplicated: number; outOfOrder: number; changed: number } {
  const bySeq = new Map(expected.map((e) => [e.seq, JSON.stringify(e)]));
  const seen = new Set<number>();
  let duplicated = 0;
  let outOfOrder = 0;
  let changed = 0;
  for (let i = 0; i < applied.length; i++) {
    const e = applied[i];
    if (seen.has(e.seq)) duplicated++;
    else if (i > 0 && e.seq < applied[i - 1].seq) outOfOrder++;
    seen.add(e.seq);
    if (bySeq.get(e.seq) !== JSON.stringify(e)) changed++;
  }
  return { lost: expected.filter((e) => !seen.has(e.seq)).length, duplicated, outOfOrder, changed };
}

describe('reliability: reconnect (forced WebSocket disconnects while a busy pipeline streams)', function () {
  const DISCONNECTS = scaled(50, 1000);
  this.timeout(scaled(180_000, 1_800_000));
  let repo: TempRepo;
  let agent: Agent;
  let relay: CuttingRelay;

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG });
    agent = await startAgent(repo);
    relay = new CuttingRelay(agent.port);
    await relay.start();
  });

  after(async () => {
    await relay?.close();
    await agent?.stop();
    repo?.dispose();
  });

  it(`every client ends with exactly the agent's events after ${DISCONNECTS} disconnects`, async () => {
    const rnd = new Random(seedOf('reconnect'));
    console.log(`      seed ${rnd.seed}`);
    const token = agent.discovery.token;
    const clients: Client[] = [
      ...[1, 2, 3, 4].map((n) => extensionClient(`extension client ${n}`, agent, token)),
      ...[1, 2, 3, 4].map((n) => relayClient(`relayed client ${n}`, relay, agent.port, token)),
    ];
    // Runs back to back until every disconnect is done: the stream never goes quiet.
    let chaosDone = false;
    let runs = 0;
    const pipeline = (async () => {
      while (!chaosDone) {
        const run = await finished(agent, await startRun(agent, { trigger: 'manual' }), 120_000);
        assert.equal(run.status, 'succeeded');
        runs++;
      }
    })();
    const kinds = { 'client abort': 0, 'reset mid-stream': 0 };
    let disconnects = 0;
    while (disconnects < DISCONNECTS) {
      await sleep(rnd.int(0, scaled(60, 40)));
      if (rnd.chance(0.5)) {
        if (rnd.pick(clients.slice(0, 4)).drop()) {
          disconnects++;
          kinds['client abort']++;
        }
      } else if (relay.cut(rnd)) {
        disconnects++;
        kinds['reset mid-stream']++;
      }
    }
    chaosDone = true;
    await pipeline;
    agent.store.flush();
    const last = agent.store.lastSeq;
    await until(() => clients.every((c) => c.applied.length > 0 && c.applied[c.applied.length - 1].seq >= last), 'every client to catch up', 60_000);
    await Promise.all(clients.map((c) => c.stop()));

    const expected = eventsOf(agent).filter((e) => e.seq <= last);
    const totals = { lost: 0, duplicated: 0, outOfOrder: 0, changed: 0 };
    const problems: string[] = [];
    for (const c of clients) {
      const d = compare(c.applied.filter((e) => e.seq <= last), expected);
      for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += d[k];
      if (d.lost || d.duplicated || d.outOfOrder || d.changed) problems.push(`${c.name}: ${JSON.stringify(d)}`);
    }
    const suite = 'Reconnect';
    recordFigures([
      info(suite, 'forced disconnects', `${disconnects} (${kinds['client abort']} client aborts, ${kinds['reset mid-stream']} connections cut at the relay) over ${runs} runs, ${expected.length.toLocaleString('en-US')} events, ${clients.length} clients`),
      info(suite, 'connections opened', clients.reduce((n, c) => n + c.connections, 0)),
      zero(suite, 'events lost (summed over clients)', totals.lost),
      zero(suite, 'events duplicated', totals.duplicated),
      zero(suite, 'events out of order', totals.outOfOrder),
      zero(suite, 'events that differ from the agent\'s', totals.changed),
    ]);
    assert.deepEqual(problems, []);
    assert.equal(disconnects, DISCONNECTS);
  });
});
