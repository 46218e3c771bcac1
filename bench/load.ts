import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { median, type BenchResult } from './util';

const CONNECTIONS = 10;
const DURATION_S = 10;
const ROUNDS = 3;
const WARM_UP_S = 2;
const RATIO_TARGET = 0.8;

const ROOT = path.resolve(__dirname, '..', '..');
const AUTOCANNON = path.join(ROOT, 'node_modules', 'autocannon');
const HDR = path.join(ROOT, 'node_modules', 'hdr-histogram-js');
const LOADGEN = path.join(__dirname, '..', 'agent', 'steps', 'loadgen.js');

/** What each tool's process reports: requests/s, latencies in ms, errors, and its own CPU share of one core. */
interface Measured {
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  cpuShare: number;
}
type Tool = 'autocannon' | 'conveyor';

/**
 * The load generator against autocannon, the closed model on both: the same URL, connections
 * and duration, each tool in its own process and the server in a third, so that no two share
 * an event loop. A tiny node:http server answers "ok". The tools alternate, round by round,
 * starting with the other one each round; the figures are medians.
 */
export async function benchLoad(): Promise<BenchResult> {
  const children = new Set<ChildProcess>();
  try {
    const url = await startServer(children);
    await measure('conveyor', url, WARM_UP_S, children);
    const rounds: Record<Tool, Measured[]> = { autocannon: [], conveyor: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const order: Tool[] = round % 2 ? ['conveyor', 'autocannon'] : ['autocannon', 'conveyor'];
      for (const tool of order) rounds[tool].push(await measure(tool, url, DURATION_S, children));
    }
    const med = (tool: Tool, key: keyof Measured) => median(rounds[tool].map((m) => m[key]));
    const a = (key: keyof Measured) => med('autocannon', key);
    const c = (key: keyof Measured) => med('conveyor', key);
    const ratio = c('rps') / a('rps');
    const { version } = JSON.parse(fs.readFileSync(path.join(AUTOCANNON, 'package.json'), 'utf8')) as { version: string };

    const lines = [
      `HTTP GET of a node:http server answering "ok" (its own process), ${CONNECTIONS} connections, ${DURATION_S} s a run, ${ROUNDS} rounds alternating, medians:`,
      row('', 'requests/s', 'p50', 'p95', 'p99', 'errors', 'own CPU'),
      row(`autocannon ${version}`, rate(a('rps')), ms(a('p50')), ms(a('p95')), ms(a('p99')), String(a('errors')), share(a('cpuShare'))),
      row('conveyor', rate(c('rps')), ms(c('p50')), ms(c('p95')), ms(c('p99')), String(c('errors')), share(c('cpuShare'))),
      row('conveyor/autocannon', ratio.toFixed(2), (c('p50') / a('p50')).toFixed(2), (c('p95') / a('p95')).toFixed(2), (c('p99') / a('p99')).toFixed(2), '', ''),
      `  requests/s by round, autocannon: ${rounds.autocannon.map((m) => rate(m.rps)).join(', ')}; conveyor: ${rounds.conveyor.map((m) => rate(m.rps)).join(', ')}` +
        ` (ratio in each round: ${rounds.conveyor.map((m, i) => (m.rps / rounds.autocannon[i].rps).toFixed(2)).join(', ')})`,
      `  CPU per request: autocannon ${perRequest(a('cpuShare'), a('rps'))}, conveyor ${perRequest(c('cpuShare'), c('rps'))}`,
      `  conveyor/autocannon requests/s ${ratio >= RATIO_TARGET ? 'meets' : 'MISSES'} the target of ${RATIO_TARGET}; the generator ${c('cpuShare') > 0.9 ? 'WAS' : 'was not'} saturated (own CPU above 90% of a core)`,
      `  (latencies of both from an HDR histogram in microseconds; autocannon's own records whole milliseconds)`,
    ];
    return {
      name: 'load',
      lines,
      figures: {
        rpsConveyor: c('rps'),
        rpsAutocannon: a('rps'),
        ratio,
        p50Conveyor: c('p50'),
        p50Autocannon: a('p50'),
        p95Conveyor: c('p95'),
        p95Autocannon: a('p95'),
        p99Conveyor: c('p99'),
        p99Autocannon: a('p99'),
        cpuShareConveyor: c('cpuShare'),
        cpuShareAutocannon: a('cpuShare'),
      },
    };
  } finally {
    for (const child of children) child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------

const SERVER = `
  const http = require('node:http');
  const server = http.createServer((req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

/** The server in its own process, until the benchmark kills it; resolves to its URL. */
function startServer(children: Set<ChildProcess>): Promise<string> {
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(`http://127.0.0.1:${out.trim()}/`);
    });
    child.on('exit', (code) => reject(new Error(`the bench server exited (code ${code}) before listening`)));
  });
}

/**
 * autocannon through its API, as its CLI runs it. Its latency histogram is passed in so that
 * p95 can be read (its result stops at p90 and p97.5), and records microseconds, not the whole
 * milliseconds autocannon records, so that both tools' latencies have the same resolution.
 */
const AUTOCANNON_RUN = `
  const [url, connections, duration] = process.argv.slice(1);
  const autocannon = require(${JSON.stringify(AUTOCANNON)});
  const hdr = require(${JSON.stringify(HDR)});
  hdr.initWebAssemblySync();
  const latencies = hdr.build({ useWebAssembly: true, bitBucketSize: 64, autoResize: true, lowestDiscernibleValue: 1, highestTrackableValue: 10000000, numberOfSignificantValueDigits: 3 });
  const record = latencies.recordValue.bind(latencies);
  latencies.recordValue = (ms) => record(Math.max(1, Math.round(ms * 1000)));
  latencies.destroy = () => {};
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  autocannon({ url, connections: Number(connections), duration: Number(duration), histograms: { latencies } }, (err, r) => {
    if (err) throw err;
    const cpu = process.cpuUsage(cpu0);
    const at = (p) => latencies.getValueAtPercentile(p) / 1000;
    process.stdout.write(JSON.stringify({
      rps: r.requests.total / r.duration, p50: at(50), p95: at(95), p99: at(99), errors: r.errors + r.non2xx,
      cpuShare: (cpu.user + cpu.system) / 1000 / (performance.now() - t0),
    }));
  });
`;

const CONVEYOR_RUN = `
  const [url, connections, duration] = process.argv.slice(1);
  const { runLoad } = require(${JSON.stringify(LOADGEN)});
  runLoad({ url, connections: Number(connections), durationMs: Number(duration) * 1000 }).then((r) => {
    process.stdout.write(JSON.stringify({
      rps: r.throughput, p50: r.latencyMs.p50, p95: r.latencyMs.p95, p99: r.latencyMs.p99, errors: r.errors, cpuShare: r.generator.cpuShare,
    }));
  });
`;

/** One run of one tool in a fresh process. */
function measure(tool: Tool, url: string, seconds: number, children: Set<ChildProcess>): Promise<Measured> {
  const code = tool === 'autocannon' ? AUTOCANNON_RUN : CONVEYOR_RUN;
  const child = spawn(process.execPath, ['-e', code, url, String(CONNECTIONS), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let errOut = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (errOut += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      children.delete(child);
      if (code !== 0) reject(new Error(`${tool} exited with code ${code}: ${errOut.trim()}`));
      else resolve(JSON.parse(out) as Measured);
    });
  });
}

const rate = (n: number) => `${Math.round(n).toLocaleString('en')}`;
const ms = (n: number) => `${n.toFixed(3)} ms`;
const share = (n: number) => `${Math.round(n * 100)}%`;
const perRequest = (cpuShare: number, rps: number) => `${((cpuShare * 1e6) / rps).toFixed(1)} µs`;
const row = (label: string, ...cells: string[]) => `  ${label.padEnd(24)}${cells.map((c, i) => c.padStart(i === 0 ? 12 : 11)).join('')}`;
