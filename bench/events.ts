import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { Agent } from '../agent/agent';
import type { ServerMessage } from '../agent/protocol';
import type { BenchResult } from './util';

const EVENTS = 300_000;

/** The subscriber: counts events until the target sequence number, checking order. */
const CLIENT = `
const WebSocket = require('ws');
const [port, token, since, target] = process.argv.slice(1);
const ws = new WebSocket('ws://127.0.0.1:' + port + '/api/events?since=' + since, { headers: { authorization: 'Bearer ' + token } });
let last = Number(since), received = 0, ordered = true;
ws.on('open', () => process.stdout.write('open\\n'));
ws.on('message', (data) => {
  const msg = JSON.parse(String(data));
  if (msg.type !== 'events') return;
  for (const e of msg.events) { if (e.seq !== last + 1) ordered = false; last = e.seq; received++; }
  if (last >= Number(target)) { process.stdout.write(JSON.stringify({ received, ordered })); ws.close(); process.exit(0); }
});
`;
const PER_TICK = 2_000;

/**
 * Event throughput to a WebSocket subscriber: log events appended as fast as the store takes
 * them (persisted in SQLite first), received by a real client over loopback. Then the same with a
 * client that stops reading, to show that memory stays bounded (the subscriber is a cursor).
 */
export async function benchEvents(): Promise<BenchResult> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bench-')));
  fs.writeFileSync(path.join(dir, 'conveyor.yml'), 'pipeline:\n  stages:\n    - name: s\n      run: "true"\n');
  const agent = await Agent.start({ workspace: dir, commitTrigger: false });
  const d = agent.discovery;
  const text = 'x'.repeat(80);
  try {
    const produce = async (count: number) => {
      for (let i = 0; i < count; i += PER_TICK) {
        for (let j = 0; j < PER_TICK; j++) {
          agent.store.append({ type: 'log', runId: 1, stage: 's', attempt: 1, step: 0, text });
        }
        await new Promise((r) => setImmediate(r));
      }
    };

    // 1. A client that keeps up, in its own process as the editor or the CLI would be.
    const start = agent.store.lastSeq;
    const target = start + EVENTS;
    const client = spawn(process.execPath, ['-e', CLIENT, String(d.port), d.token, String(start), String(target)], {
      cwd: path.join(__dirname, '..', '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let clientOut = '';
    client.stdout.on('data', (b) => (clientOut += b));
    await new Promise<void>((resolve) => {
      const check = () => (clientOut.includes('open') ? resolve() : setTimeout(check, 10));
      check();
    });
    const t0 = process.hrtime.bigint();
    const got = new Promise<void>((resolve) => client.on('exit', () => resolve()));
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    await produce(EVENTS);
    await got;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    clearInterval(sampler);
    const result = JSON.parse(clientOut.slice(clientOut.indexOf('{'))) as { received: number; ordered: boolean };
    const received = result.received;
    const ordered = result.ordered;
    const rate = received / seconds;

    // 2. A client that stops reading: the agent must not queue for it without bound.
    const slow = new WebSocket(`ws://127.0.0.1:${d.port}/api/events?since=${agent.store.lastSeq}`, { headers: { authorization: `Bearer ${d.token}` } });
    await new Promise((r) => slow.once('open', r));
    (slow as unknown as { _socket: { pause(): void } })._socket.pause();
    global.gc?.();
    const before = process.memoryUsage().rss;
    let slowPeak = before;
    const sampler2 = setInterval(() => (slowPeak = Math.max(slowPeak, process.memoryUsage().rss)), 50);
    await produce(EVENTS);
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(sampler2);
    slow.terminate();
    const growthMb = (slowPeak - before) / 1024 / 1024;

    return {
      name: 'events',
      lines: [
        `event throughput to one WebSocket subscriber (${EVENTS.toLocaleString('en')} log events, each persisted first):`,
        `  ${Math.round(rate).toLocaleString('en')} events/s, in order without gaps: ${ordered && received === EVENTS ? 'yes' : 'NO'}   (target 50,000/s) ${rate >= 50_000 ? 'PASS' : 'MISS'}`,
        `  agent RSS peak while streaming: ${(peak / 1024 / 1024).toFixed(0)} MB`,
        `  a client that stops reading, ${EVENTS.toLocaleString('en')} more events: RSS grew ${growthMb.toFixed(0)} MB at most (bounded: the socket buffer, not a queue)`,
      ],
      figures: { eventsPerSecond: rate, rssPeakMb: peak / 1024 / 1024, stalledClientGrowthMb: growthMb },
    };
  } finally {
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
