import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { checkThresholds, parseThreshold, runLoad, type LoadResult, type Threshold } from '../../agent/steps/loadgen';
import { ResponseParser } from '../../agent/steps/loadgen/response-parser';

interface TestServer {
  url: string;
  /** Requests the server has seen (their heads arrived). */
  count(): number;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1 that counts the requests it receives. */
async function httpServer(handler: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void): Promise<TestServer> {
  let n = 0;
  const server = http.createServer((req, res) => handler(req, res, ++n));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    count: () => n,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A raw TCP server that counts connections and calls `onRequest` for each request's data (the
 * requests here fit in one packet), with its number on that connection, from 1.
 */
async function rawServer(onRequest: (socket: net.Socket, n: number) => void): Promise<TestServer> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    n++;
    sockets.add(s);
    let requests = 0;
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('data', () => onRequest(s, ++requests));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    count: () => n,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A raw server that answers the first request on each connection with `reply` and closes it. */
const replyAndClose = (reply: string) => rawServer((s, n) => n === 1 && s.end(reply));

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function assertOrderedLatencies(r: LoadResult): void {
  const l = r.latencyMs;
  const order = [l.min, l.p50, l.p90, l.p95, l.p99, l.max];
  for (let i = 1; i < order.length; i++) assert.ok(order[i - 1] <= order[i], `latencies out of order: ${JSON.stringify(l)}`);
  assert.ok(l.min > 0 && l.mean >= l.min && l.mean <= l.max, JSON.stringify(l));
}

describe('load generator (real HTTP servers on 127.0.0.1)', function () {
  const servers: TestServer[] = [];
  const serve = async (s: Promise<TestServer>) => {
    const server = await s;
    servers.push(server);
    return server;
  };

  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  it('closed model: counts every request the server counted, with latencies and bytes', async () => {
    const server = await serve(httpServer((_req, res) => res.end('ok')));
    const progress: number[] = [];
    const r = await runLoad({ url: server.url, connections: 4, durationMs: 1200, onProgress: (p) => progress.push(p.requests) });
    assert.ok(r.requests > 0);
    assert.equal(r.requests, server.count());
    assert.equal(r.responses, r.requests);
    assert.deepEqual(r.statusCounts, { '200': r.requests });
    assert.equal(r.errors, 0);
    assert.equal(r.errorRate, 0);
    assert.deepEqual(r.errorKinds, {});
    assert.equal(r.dropped, 0);
    assertOrderedLatencies(r);
    assert.ok(r.bytes > r.requests * 'HTTP/1.1 200 OK\r\n\r\nok'.length, `bytes ${r.bytes}`);
    assert.ok(Math.abs(r.throughput - (r.responses * 1000) / r.durationMs) < 1e-6);
    assert.ok(r.generator.cpuUserMs + r.generator.cpuSystemMs > 0);
    assert.equal(r.generator.saturated, r.generator.cpuShare > 0.9);
    assert.equal(progress.at(-1), r.requests, 'the last progress has the final count');
    assert.ok(progress.every((n, i) => i === 0 || progress[i - 1] <= n), `progress ${progress}`);
  });

  it('sends the method, headers and body it is given', async () => {
    const seen: { method?: string; header?: string; body: string; length?: string; host?: string; agent?: string }[] = [];
    const server = await serve(
      httpServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          seen.push({ method: req.method, header: req.headers['x-probe'] as string, body, length: req.headers['content-length'], host: req.headers.host, agent: req.headers['user-agent'] });
          res.end('ok');
        });
      }),
    );
    const body = JSON.stringify({ greeting: 'héllo' });
    const r = await runLoad({ url: server.url, method: 'post', headers: { 'X-Probe': 'yes', 'User-Agent': 'probe/1' }, body, connections: 1, durationMs: 200 });
    assert.equal(r.requests, seen.length);
    assert.ok(seen.length > 0);
    const host = new URL(server.url).host;
    for (const s of seen) {
      assert.deepEqual(s, { method: 'POST', header: 'yes', body, length: String(Buffer.byteLength(body)), host, agent: 'probe/1' });
    }
  });

  it('counts each status, and statuses of 400 and above as errors by kind', async () => {
    const tally: Record<string, number> = {};
    const statuses = [200, 201, 302, 404, 500, 503];
    const server = await serve(
      httpServer((_req, res, n) => {
        const status = statuses[n % statuses.length];
        tally[status] = (tally[status] ?? 0) + 1;
        res.writeHead(status, { 'Content-Type': 'text/plain' });
        res.end(`status ${status}`);
      }),
    );
    const r = await runLoad({ url: server.url, connections: 3, durationMs: 600 });
    assert.deepEqual(r.statusCounts, tally);
    const failing = Object.entries(tally).filter(([s]) => Number(s) >= 400);
    assert.deepEqual(r.errorKinds, Object.fromEntries(failing.map(([s, v]) => [`HTTP ${s}`, v])));
    assert.equal(r.errors, failing.reduce((sum, [, v]) => sum + v, 0));
    assert.equal(r.errorRate, r.errors / r.requests);
    assert.equal(r.responses, server.count());
  });

  it('reads chunked, sized, empty and close-delimited responses, and HEAD answers', async () => {
    const server = await serve(
      httpServer((req, res, n) => {
        switch (n % 4) {
          case 0:
            res.write('a'.repeat(5000));
            res.write('b');
            res.end('c'.repeat(70_000));
            break;
          case 1:
            res.writeHead(204).end();
            break;
          case 2:
            res.setHeader('Connection', 'close');
            res.end('closing');
            break;
          default:
            res.setHeader('Content-Length', 70_001);
            res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(70_001));
        }
      }),
    );
    const r = await runLoad({ url: server.url, connections: 2, durationMs: 500 });
    assert.deepEqual(r.errorKinds, {});
    assert.equal(r.requests, server.count());
    const head = await runLoad({ url: server.url, method: 'HEAD', connections: 2, durationMs: 300 });
    assert.deepEqual(head.errorKinds, {});
    assert.equal(r.requests + head.requests, server.count());

    const untilClose = await serve(replyAndClose('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until the end'));
    const c = await runLoad({ url: untilClose.url, connections: 2, durationMs: 300 });
    assert.ok(c.requests > 0);
    assert.deepEqual(c.statusCounts, { '200': c.requests });
    assert.equal(c.requests, untilClose.count(), 'one connection per response');
  });

  it('counts ECONNREFUSED for a closed port', async () => {
    const port = await closedPort();
    const r = await runLoad({ url: `http://127.0.0.1:${port}/`, connections: 2, durationMs: 300 });
    assert.ok(r.requests > 0);
    assert.equal(r.errors, r.requests);
    assert.deepEqual(r.errorKinds, { ECONNREFUSED: r.requests });
    assert.match(r.errorDetails.ECONNREFUSED, /ECONNREFUSED/);
    assert.equal(r.errorRate, 1);
    assert.equal(r.responses, 0);
    assert.deepEqual(r.statusCounts, {});
    assert.deepEqual(r.latencyMs, { min: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0 });
  });

  it('counts time-outs for a server that never answers', async () => {
    const server = await serve(httpServer(() => undefined));
    const r = await runLoad({ url: server.url, connections: 3, durationMs: 500, timeoutMs: 200 });
    assert.ok(r.requests >= 3, `requests ${r.requests}`);
    assert.deepEqual(r.errorKinds, { timeout: r.requests });
    assert.equal(r.requests, server.count());
    assert.equal(r.responses, 0);
  });

  it('sends again, on a new connection, a request whose reused connection the server closed unanswered', async () => {
    // Each connection answers its first request and drops the second without a byte.
    const server = await serve(rawServer((s, n) => (n === 1 ? s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok') : s.destroy())));
    const r = await runLoad({ url: server.url, connections: 1, durationMs: 300 });
    assert.ok(r.requests > 1);
    assert.deepEqual(r.errorKinds, {});
    assert.deepEqual(r.statusCounts, { '200': r.requests });
    assert.equal(r.requests, server.count(), 'one answered request per connection');
  });

  it('counts a new connection closed before the answer as a reset', async () => {
    const server = await serve(rawServer((s) => s.destroy()));
    const r = await runLoad({ url: server.url, connections: 2, durationMs: 200 });
    assert.ok(r.requests > 0);
    assert.deepEqual(r.errorKinds, { reset: r.requests });
    assert.equal(r.requests, server.count());
  });

  it('counts a malformed answer as a bad response', async () => {
    const server = await serve(replyAndClose('SSH-2.0-OpenSSH_9.6\r\n\r\n'));
    const r = await runLoad({ url: server.url, connections: 1, durationMs: 200 });
    assert.ok(r.requests > 0);
    assert.deepEqual(r.errorKinds, { 'bad response': r.requests });
    assert.match(r.errorDetails['bad response'], /HTTP\/1\.x status line/);
  });

  it('arrival rate: sends about rate x duration requests whatever the answers take', async () => {
    const rate = 50;
    const durationMs = 1000;
    const server = await serve(httpServer((_req, res) => res.end('ok')));
    const r = await runLoad({ url: server.url, connections: 5, rate, durationMs });
    const expected = (rate * durationMs) / 1000;
    const sent = server.count() + r.dropped;
    assert.ok(sent >= expected * 0.7 && sent <= expected * 1.3 + 1, `sent ${server.count()} + dropped ${r.dropped}, expected about ${expected}`);
    assert.equal(r.requests, server.count());
    assert.equal(r.errors, 0);

    // One connection, answers that take 100 ms: most arrivals find it busy and are dropped.
    const slow = await serve(httpServer((_req, res) => setTimeout(() => res.end('ok'), 100)));
    const d = await runLoad({ url: slow.url, connections: 1, rate: 100, durationMs });
    assert.equal(d.requests, slow.count());
    assert.ok(d.dropped > d.requests, `dropped ${d.dropped}, sent ${d.requests}`);
    const all = d.requests + d.dropped;
    assert.ok(all >= 100 * 0.7 && all <= 100 * 1.3 + 1, `sent ${d.requests} + dropped ${d.dropped}, expected about 100`);
  });

  it('stops on abort and returns what it measured', async () => {
    const controller = new AbortController();
    const server = await serve(
      httpServer((_req, res, n) => {
        res.end('ok');
        if (n === 50) controller.abort();
      }),
    );
    const durationMs = 600_000;
    const r = await runLoad({ url: server.url, connections: 2, durationMs, signal: controller.signal });
    assert.ok(r.durationMs < durationMs);
    assert.ok(r.requests >= 48 && r.requests <= server.count(), `requests ${r.requests}, server ${server.count()}`);
    assert.deepEqual(r.statusCounts, { '200': r.requests });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(server.count() <= r.requests + 2, 'nothing is sent after the abort');

    const before = await runLoad({ url: server.url, connections: 2, durationMs, signal: AbortSignal.abort() });
    assert.equal(before.requests, 0);
  });

  it('rejects bad options with what to change', async () => {
    await assert.rejects(runLoad({ url: '127.0.0.1:8080/health', connections: 1, durationMs: 100 }), /not an absolute URL/);
    await assert.rejects(runLoad({ url: 'https://127.0.0.1/', connections: 1, durationMs: 100 }), /http:\/\/ URL; .* uses https/);
    await assert.rejects(runLoad({ url: 'http://127.0.0.1/', connections: 0, durationMs: 100 }), /connections must be a whole number from 1/);
    await assert.rejects(runLoad({ url: 'http://127.0.0.1/', connections: 1, durationMs: 0 }), /duration must be above 0/);
    await assert.rejects(runLoad({ url: 'http://127.0.0.1/', connections: 1, durationMs: 100, rate: -1 }), /arrival rate must be above 0/);
    await assert.rejects(runLoad({ url: 'http://127.0.0.1/', connections: 1, durationMs: 100, headers: { 'X-A': 'a\r\nb' } }), /header "X-A" has a line break/);
    await assert.rejects(runLoad({ url: 'http://127.0.0.1/', connections: 1, durationMs: 100, method: 'GET /' }), /is not an HTTP method/);
  });
});

describe('load response parser', () => {
  /** The bytes a real node server sends for several pipelined requests, the last one closing. */
  async function capture(): Promise<Buffer> {
    const server = http.createServer((req, res) => {
      if (req.url === '/chunked') {
        res.addTrailers({ 'X-Checksum': 'abc' });
        res.setHeader('Trailer', 'X-Checksum');
        res.write('first');
        res.end('second');
      } else if (req.url === '/empty') {
        res.writeHead(204).end();
      } else if (req.url === '/missing') {
        res.writeHead(404).end('not here');
      } else {
        res.end('ok');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const socket = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      const paths = ['/chunked', '/empty', '/missing', '/chunked', '/last'];
      socket.write(paths.map((p, i) => `GET ${p} HTTP/1.1\r\nHost: x\r\n${i === paths.length - 1 ? 'Connection: close\r\n' : ''}\r\n`).join(''));
      await new Promise((resolve) => socket.on('close', resolve));
      return Buffer.concat(chunks);
    } finally {
      server.close();
    }
  }

  it('reads the same responses however the data is split', async () => {
    const bytes = await capture();
    for (const size of [1, 2, 7, 64, bytes.length]) {
      const got: [number, boolean][] = [];
      const parser = new ResponseParser((status, close) => got.push([status, close]));
      for (let i = 0; i < bytes.length; i += size) {
        assert.equal(parser.execute(bytes.subarray(i, i + size)), null, `split every ${size} bytes`);
      }
      assert.deepEqual(got, [[200, false], [204, false], [404, false], [200, false], [200, true]], `split every ${size} bytes`);
    }
  });

  it('says what is wrong with a malformed response', () => {
    const parser = new ResponseParser(() => undefined);
    assert.match(parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n')) ?? '', /Content-Length "lots"/);
    const chunked = new ResponseParser(() => undefined);
    assert.match(chunked.execute(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')) ?? '', /chunk size "zz"/);
  });
});

describe('load thresholds', () => {
  const parse = (metric: string, expr: string): Threshold => {
    const r = parseThreshold(metric, expr);
    assert.ok(r.ok, r.ok ? '' : r.error);
    return r.value;
  };
  const error = (metric: string, expr: string): string => {
    const r = parseThreshold(metric, expr);
    assert.ok(!r.ok, `${metric} ${expr} should not parse`);
    return r.error;
  };

  it('parses each unit into ms, a fraction or requests/s', () => {
    assert.deepEqual(parse('p95', '< 200ms'), { metric: 'p95', op: '<', value: 200, source: 'p95 < 200ms' });
    assert.deepEqual(parse('p99', '<=1.5s'), { metric: 'p99', op: '<=', value: 1500, source: 'p99 <= 1.5s' });
    assert.equal(parse('mean', '< 0.5 ms').value, 0.5);
    assert.equal(parse('max', '< 2S').value, 2000);
    assert.deepEqual(parse('errorRate', '< 1%'), { metric: 'errorRate', op: '<', value: 0.01, source: 'errorRate < 1%' });
    assert.equal(parse('errorRate', '<= 0.01').value, 0.01);
    assert.equal(parse('errorRate', '< 0').value, 0);
    assert.deepEqual(parse('throughput', '>= 500/s'), { metric: 'throughput', op: '>=', value: 500, source: 'throughput >= 500/s' });
    assert.equal(parse('throughput', '> 500 req/s').op, '>');
    assert.equal(parse('throughput', '> 500 req/s').value, 500);
  });

  it('says which unit a metric takes, with an example, for every wrong or missing unit', () => {
    assert.equal(error('p95', '< 200'), 'p95 takes a duration such as "< 200ms"; "< 200" has no unit (use ms or s)');
    for (const [metric, expr] of [['p50', '< 200/s'], ['p90', '< 2%'], ['p99', '< 3 min'], ['max', '< 1'], ['mean', '< 10us']]) {
      const e = error(metric, expr);
      assert.ok(e.startsWith(`${metric} takes a duration such as "< 200ms"; "${expr}" has`), e);
      assert.match(e, /use ms or s/);
    }
    for (const expr of ['< 5', '< 1ms', '< 2/s']) {
      const e = error('errorRate', expr);
      assert.ok(e.startsWith(`errorRate takes a percentage such as "< 1%" or a fraction up to 1 such as "< 0.01"; "${expr}"`), e);
      assert.match(e, /use %/);
    }
    assert.match(error('errorRate', '< 150%'), /"< 150%" is above 100%/);
    for (const expr of ['>= 500', '>= 500ms', '>= 5%']) {
      const e = error('throughput', expr);
      assert.ok(e.startsWith(`throughput takes a rate such as ">= 500/s"; "${expr}" has`), e);
      assert.match(e, /use \/s or req\/s/);
    }
    assert.equal(error('p95', '200ms'), 'p95 takes a comparison (<, <=, > or >=) and a duration such as "< 200ms"; "200ms" is not one');
    assert.match(error('throughput', '>= lots'), /^throughput takes a comparison .* such as ">= 500\/s"; ">= lots" is not one$/);
    assert.match(error('p42', '< 1ms'), /^"p42" is not a load test metric; use one of p50, p90, p95, p99, max, mean, errorRate, throughput$/);
  });

  it('evaluates thresholds against a real result', async () => {
    const server = await httpServer((_req, res, n) => res.writeHead(n % 4 === 0 ? 500 : 200).end('ok'));
    try {
      const r = await runLoad({ url: server.url, connections: 2, durationMs: 300 });
      assert.ok(r.errors > 0 && r.errors < r.requests);
      const p95 = r.latencyMs.p95;
      const rate = r.errorRate * 100;
      const checks = checkThresholds(r, [
        parse('p95', `<= ${p95}ms`),
        parse('p95', `< ${p95}ms`),
        parse('p99', `> ${r.latencyMs.p99}ms`),
        parse('errorRate', `< ${rate + 1}%`),
        parse('errorRate', `< ${rate - 1}%`),
        parse('throughput', `>= ${Math.floor(r.throughput)}/s`),
        parse('throughput', `> ${Math.ceil(r.throughput)} req/s`),
      ]);
      assert.deepEqual(
        checks.map((c) => c.ok),
        [true, false, false, true, false, true, false],
      );
      assert.deepEqual(
        checks.map((c) => c.actual),
        [p95, p95, r.latencyMs.p99, r.errorRate, r.errorRate, r.throughput, r.throughput],
      );
    } finally {
      await server.close();
    }
  });

  it('fails a latency threshold when nothing answered', async () => {
    const port = await closedPort();
    const r = await runLoad({ url: `http://127.0.0.1:${port}/`, connections: 1, durationMs: 100 });
    const [latency, errors] = checkThresholds(r, [parse('p95', '< 200ms'), parse('errorRate', '< 1%')]);
    assert.equal(latency.ok, false);
    assert.ok(Number.isNaN(latency.actual));
    assert.equal(errors.ok, false);
    assert.equal(errors.actual, 1);
  });
});
