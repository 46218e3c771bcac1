import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { freePort, PortInUseError, SwitchBoard, TrafficSwitch } from '../../../agent/runtimes/proxy';

/** An HTTP upstream that answers its name; /slow answers when the test says so. */
class Upstream {
  server!: http.Server;
  port = 0;
  readonly held: (() => void)[] = [];
  constructor(readonly name: string) {}
  async start(port = 0): Promise<this> {
    this.server = http.createServer((req, res) => {
      if (req.url === '/slow') {
        this.held.push(() => res.end(`${this.name} slow`));
        return;
      }
      if (req.url === '/echo') {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          res.setHeader('set-cookie', ['a=1', 'b=2']);
          res.end(JSON.stringify({ name: this.name, method: req.method, body, headers: req.headers }));
        });
        return;
      }
      res.end(this.name);
    });
    this.server.on('upgrade', (req, socket: net.Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d) => socket.write(`${this.name}:${d}`));
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }
  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }
  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** A plain TCP upstream: answers each line with its name. */
async function lineServer(name: string, banner = false): Promise<{ addr: string; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    if (banner) s.write(`${name} ready\n`);
    s.on('data', (d) => s.write(`${name}:${String(d)}`));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

function get(port: number, path: string, agent: http.Agent | false = false, method = 'GET', body?: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent, method }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A raw connection that collects what it receives. */
async function dial(port: number): Promise<{ socket: net.Socket; next(): Promise<string>; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const chunks: string[] = [];
  const waiting: ((s: string) => void)[] = [];
  socket.on('data', (d) => {
    const w = waiting.shift();
    if (w) w(String(d));
    else chunks.push(String(d));
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  return {
    socket,
    next: () => (chunks.length ? Promise.resolve(chunks.shift()!) : new Promise((r) => waiting.push(r))),
    closed,
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('TrafficSwitch', function () {
  this.timeout(60_000);
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.splice(0).reverse()) c();
  });
  const upstream = async (name: string) => {
    const u = await new Upstream(name).start();
    cleanup.push(() => u.close());
    return u;
  };
  const listen = async (upstream: string | null, extra: Partial<Parameters<typeof TrafficSwitch.listen>[0]> = {}) => {
    const sw = await TrafficSwitch.listen({ publicPort: 0, upstream, environment: 'test', ...extra });
    cleanup.push(() => sw.dispose());
    return sw;
  };

  it('sends HTTP to the upstream, switches new requests at once, and lets a request in flight finish on the old one', async () => {
    const blue = await upstream('blue');
    const green = await upstream('green');
    const sw = await listen(blue.addr);
    assert.equal((await get(sw.publicPort, '/')).body, 'blue');

    const slow = get(sw.publicPort, '/slow');
    await until(() => blue.held.length === 1, 'the slow request to reach blue');
    sw.setUpstream(green.addr);
    assert.equal(sw.connectionsTo(blue.addr), 1, 'the slow request still counts for blue');
    let drained: boolean | undefined;
    const draining = sw.drain(blue.addr, 30_000).then((d) => (drained = d));

    assert.equal((await get(sw.publicPort, '/')).body, 'green');
    assert.equal(drained, undefined, 'blue is not drained while its request is in flight');
    blue.held.shift()!();
    assert.deepEqual(await slow, { status: 200, body: 'blue slow', headers: (await slow).headers });
    await draining;
    assert.equal(drained, true);
    assert.equal(sw.connectionsTo(blue.addr), 0);
  });

  it('moves a keep-alive connection to the new upstream at its next request', async () => {
    const blue = await upstream('blue');
    const green = await upstream('green');
    const sw = await listen(blue.addr);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    assert.equal((await get(sw.publicPort, '/', agent)).body, 'blue');
    assert.equal((await get(sw.publicPort, '/', agent)).body, 'blue');
    sw.setUpstream(green.addr);
    assert.equal(await sw.drain(blue.addr, 30_000), true, 'an idle keep-alive connection holds nothing on blue');
    assert.equal((await get(sw.publicPort, '/', agent)).body, 'green');
    assert.equal(sw.stats.accepted, 1, 'all three requests used one client connection');
    assert.equal(sw.stats.requests, 3);
  });

  it('forwards bodies and headers both ways', async () => {
    const blue = await upstream('blue');
    const sw = await listen(blue.addr);
    const r = await get(sw.publicPort, '/echo', false, 'POST', 'the body');
    const seen = JSON.parse(r.body);
    assert.equal(seen.method, 'POST');
    assert.equal(seen.body, 'the body');
    assert.equal(seen.headers.host, `127.0.0.1:${sw.publicPort}`, 'the Host header is the one the client sent');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);

    // A chunked request body (no length known in advance).
    const chunked = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: sw.publicPort, path: '/echo', method: 'PUT', agent: false }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.write('part one, ');
      setImmediate(() => req.end('part two'));
    });
    assert.equal(JSON.parse(chunked).body, 'part one, part two');
  });

  it('pipes anything that is not HTTP as bytes; such a connection stays on its upstream until it closes', async () => {
    const a = await lineServer('A');
    const b = await lineServer('B');
    cleanup.push(() => a.close(), () => b.close());
    const sw = await listen(a.addr);
    const c1 = await dial(sw.publicPort);
    c1.socket.write('hello\n');
    assert.equal(await c1.next(), 'A:hello\n');
    sw.setUpstream(b.addr);
    c1.socket.write('again\n');
    assert.equal(await c1.next(), 'A:again\n', 'an open connection finishes on the old upstream');
    const c2 = await dial(sw.publicPort);
    c2.socket.write('new\n');
    assert.equal(await c2.next(), 'B:new\n');
    assert.equal(await sw.drain(a.addr, 50), false, 'the drain times out while c1 is open');
    const drained = sw.drain(a.addr, 30_000);
    c1.socket.end();
    assert.equal(await drained, true);
    c2.socket.destroy();
    assert.ok(sw.stats.tcp >= 2);
  });

  it('serves a protocol where the server speaks first', async () => {
    const a = await lineServer('A', true);
    cleanup.push(() => a.close());
    const sw = await listen(a.addr);
    const c = await dial(sw.publicPort);
    assert.equal(await c.next(), 'A ready\n');
    c.socket.destroy();
  });

  it('tunnels an upgraded connection (WebSocket-like) and keeps it on its upstream', async () => {
    const blue = await upstream('blue');
    const green = await upstream('green');
    const sw = await listen(blue.addr);
    const c = await dial(sw.publicPort);
    c.socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    let head = '';
    while (!head.includes('\r\n\r\n')) head += await c.next();
    assert.match(head, /^HTTP\/1\.1 101/);
    sw.setUpstream(green.addr);
    c.socket.write('ping');
    assert.equal(await c.next(), 'blue:ping');
    assert.equal(sw.connectionsTo(blue.addr), 1);
    c.socket.destroy();
    assert.equal(await sw.drain(blue.addr, 30_000), true);
  });

  it('holds a request while its upstream is not up yet, and answers 502 with the reason when it never comes', async () => {
    const port = await freePort();
    const sw = await listen(`127.0.0.1:${port}`, { connectTimeoutMs: 20_000 });
    const pending = get(sw.publicPort, '/');
    const late = new Upstream('late');
    setTimeout(() => void late.start(port), 100);
    cleanup.push(() => late.close());
    assert.equal((await pending).body, 'late');

    const gone = await freePort();
    const sw2 = await listen(`127.0.0.1:${gone}`, { connectTimeoutMs: 200 });
    const r = await get(sw2.publicPort, '/');
    assert.equal(r.status, 502);
    assert.match(r.body, /no instance of environment "test" answered \(127\.0\.0\.1:\d+: ECONNREFUSED\)/);
    assert.equal(sw2.stats.failed, 1);
  });

  it('says clearly when the public port is taken', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    cleanup.push(() => holder.close());
    const port = (holder.address() as net.AddressInfo).port;
    await assert.rejects(TrafficSwitch.listen({ publicPort: port, upstream: null, environment: 'staging' }), (e: Error) => {
      assert.ok(e instanceof PortInUseError);
      assert.match(e.message, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use by another program, so environment "staging" cannot be served there`));
      assert.match(e.message, /lsof -iTCP:\d+ -sTCP:LISTEN/);
      assert.match(e.message, /give the environment another port/);
      return true;
    });

    const board = new SwitchBoard();
    cleanup.push(() => board.dispose());
    const blue = await upstream('blue');
    const shared = await freePort();
    await board.route('staging', shared, blue.addr);
    await assert.rejects(board.route('production', shared, blue.addr), /port \d+ on 127\.0\.0\.1 already serves environment "staging"/);
  });

  it('closes its listener and every open connection when disposed', async () => {
    const blue = await upstream('blue');
    const sw = await TrafficSwitch.listen({ publicPort: 0, upstream: blue.addr });
    const c = await dial(sw.publicPort);
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(await c.next(), /blue$/);
    assert.equal(sw.stats.open, 1);
    sw.dispose();
    await c.closed;
    await assert.rejects(get(sw.publicPort, '/'), /ECONNREFUSED/);
  });
});

describe('SwitchBoard', function () {
  this.timeout(30_000);

  it('creates a switch per environment on first route, moves it when the port changes, and closes it', async () => {
    const board = new SwitchBoard();
    const blue = await new Upstream('blue').start();
    const green = await new Upstream('green').start();
    try {
      const p1 = await board.allocatePort();
      await board.route('staging', p1, blue.addr);
      assert.equal((await get(p1, '/')).body, 'blue');
      await board.route('staging', p1, green.addr);
      assert.equal((await get(p1, '/')).body, 'green');
      assert.equal(await board.drain('staging', blue.addr, 1000), true);

      const p2 = await board.allocatePort();
      assert.notEqual(p1, p2);
      await board.route('staging', p2, green.addr);
      assert.equal((await get(p2, '/')).body, 'green');
      await until(() => board.get('staging')!.publicPort === p2, 'the move');
      board.close('staging');
      assert.equal(board.get('staging'), undefined);
      await assert.rejects(get(p2, '/'), /ECONNREFUSED/);
    } finally {
      board.dispose();
      blue.close();
      green.close();
    }
  });

  it('holds an environment\'s public port from allocation: 503 until a release is routed to it, then it serves; let go when closed', async () => {
    const board = new SwitchBoard();
    const blue = await new Upstream('blue').start();
    const holder = net.createServer();
    try {
      const port = await board.hold('staging', 0);
      // Nothing else can take it, though no release is live yet.
      const taken = await new Promise<boolean>((resolve) => {
        const other = net.createServer();
        other.once('error', () => resolve(true));
        other.listen(port, '127.0.0.1', () => other.close(() => resolve(false)));
      });
      assert.ok(taken, `127.0.0.1:${port} is held`);
      const early = await get(port, '/');
      assert.equal(early.status, 503);
      assert.match(early.body, /no release is live in environment "staging" yet/);
      const c = await dial(port);
      c.socket.write('\x00\x01 not http\r\n');
      await c.closed;
      assert.equal(await board.hold('staging', 0), port, 'held once per environment');

      await board.route('staging', port, blue.addr);
      assert.equal((await get(port, '/')).body, 'blue');

      // A given port: held as well, and not one another environment holds, nor another program.
      const fixed = await freePort();
      assert.equal(await board.hold('production', fixed), fixed);
      assert.equal((await get(fixed, '/')).status, 503);
      await assert.rejects(board.hold('qa', fixed), /port \d+ on 127\.0\.0\.1 already serves environment "production"/);
      await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
      const busy = (holder.address() as net.AddressInfo).port;
      await assert.rejects(board.hold('qa', busy), (e: Error) => e instanceof PortInUseError && /in use by another program, so environment "qa"/.test(e.message));

      board.close('staging');
      await assert.rejects(get(port, '/'), /ECONNREFUSED/);
      board.dispose();
      await assert.rejects(get(fixed, '/'), /ECONNREFUSED/);
      await assert.rejects(board.hold('staging', 0), /the agent is stopping/);
    } finally {
      board.dispose();
      blue.close();
      holder.close();
    }
  });
});
