import * as http from 'node:http';
import * as net from 'node:net';
import type { IDisposable } from '../util/lifecycle';
import { splitAddress } from './health';

/** How long a new connection or request waits for an upstream that refuses (restarting, not up yet). */
const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
/** How long the switch waits for a client's first bytes before it treats the connection as plain TCP. */
const DEFAULT_SNIFF_MS = 300;
/** A first line longer than this is not an HTTP/1 request line. */
const MAX_REQUEST_LINE = 8192;

/** The public port is held by another program (or another environment). */
export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    readonly host: string,
    readonly environment: string | undefined,
    holder?: string,
  ) {
    const who = environment ? `environment "${environment}"` : 'the switch';
    super(
      holder
        ? `port ${port} on ${host} already serves environment "${holder}", so ${who} cannot be served there: give one of them another port`
        : `port ${port} on ${host} is in use by another program, so ${who} cannot be served there: stop that program (\`lsof -iTCP:${port} -sTCP:LISTEN\` or \`ss -ltnp 'sport = :${port}'\` shows which) or give the environment another port`,
    );
    this.name = 'PortInUseError';
  }
}

export interface TrafficSwitchOptions {
  /** The port users reach the environment on; 0 picks a free one (tests). */
  publicPort: number;
  /** Default 127.0.0.1: the switch serves this machine only. */
  host?: string;
  /**
   * Where connections go at first (host:port); null: none yet (a port held before any release is
   * live): HTTP requests are answered 503, other connections are closed.
   */
  upstream?: string | null;
  /** For messages: the environment the switch serves. */
  environment?: string;
  /**
   * `auto` (default): a connection whose first line is an HTTP/1 request line is proxied request
   * by request, anything else is piped as bytes. `tcp`: every connection is piped as bytes.
   */
  mode?: 'auto' | 'tcp';
  /** How long a connection waits for an upstream that refuses before it fails. Default 3 s. */
  connectTimeoutMs?: number;
  /** How long `auto` waits for the client to speak first before piping bytes. Default 300 ms. */
  sniffMs?: number;
}

export interface SwitchStats {
  /** Client connections accepted since the switch started. */
  accepted: number;
  /** Client connections open now. */
  open: number;
  /** HTTP requests forwarded (HTTP connections). */
  requests: number;
  /** Connections piped as bytes (anything that is not HTTP/1). */
  tcp: number;
  /** Requests answered 502 (503: no upstream set) and connections closed because no upstream answered. */
  failed: number;
  /** Upstream connections open now, by upstream address. */
  upstreams: Record<string, number>;
}

/**
 * The agent's own traffic switch for one environment: it listens on 127.0.0.1:<publicPort> and
 * sends each connection to the current upstream, the instance that serves the live release.
 *
 * Blue-green without losing a request:
 *
 *   setUpstream(green) ──> new connections (and, for HTTP, new requests) go to green at once
 *   drain(blue, t)     ──> resolves when nothing is in flight to blue any more (or after t)
 *   then blue is stopped: nothing was on its way to it
 *
 * HTTP/1 connections are proxied request by request, so a keep-alive connection follows the switch
 * at its next request: otherwise a client that keeps its connection busy would stay on the old
 * instance until it is stopped, and lose the request in flight then. Anything else (a connection
 * whose first bytes are not an HTTP/1 request line, or a server-speaks-first protocol) is piped
 * as bytes and stays on the upstream it started on until it closes. An upgraded HTTP connection
 * (WebSocket) is piped as bytes too. While an upstream refuses connections (an instance
 * restarting, a recreate deploy between stop and start), a new connection waits for it up to
 * `connectTimeoutMs`, then fails (HTTP: 502 with the reason).
 *
 * Why a proxy in the agent, not a port swap: a listening port cannot be handed from one process
 * to another without a gap (the old one closes it, the new one binds it: connections arriving in
 * between are refused); SO_REUSEPORT, which lets two processes bind the same port, is not
 * available in Node 20; and a container's published port is fixed when the container is
 * created. One extra loopback hop per connection buys a switch that no deploy has to wait for.
 *
 * The trade-off: the public port is served only while the agent runs. The instances themselves
 * keep running when the agent stops (they are reachable on their own ports, which the
 * environment's live state shows), and when the agent starts again the switch comes back
 * pointing at the live release.
 */
export class TrafficSwitch implements IDisposable {
  private readonly server: net.Server;
  private readonly httpServer: http.Server;
  private readonly clients = new Set<net.Socket>();
  private readonly upstreamSockets = new Set<net.Socket>();
  private readonly openByUpstream = new Map<string, number>();
  private readonly drains = new Set<{ addr: string; done: (drained: boolean) => void }>();
  private current: string | null;
  private disposed = false;
  private readonly counters = { accepted: 0, requests: 0, tcp: 0, failed: 0 };
  readonly host: string;
  readonly environment: string | undefined;
  private readonly mode: 'auto' | 'tcp';
  private readonly connectTimeoutMs: number;
  private readonly sniffMs: number;
  private boundPort = 0;

  private constructor(opts: TrafficSwitchOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.environment = opts.environment;
    this.current = opts.upstream ?? null;
    this.mode = opts.mode ?? 'auto';
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.sniffMs = opts.sniffMs ?? DEFAULT_SNIFF_MS;
    this.httpServer = http.createServer((req, res) => this.forwardRequest(req, res));
    this.httpServer.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.forwardUpgrade(req, socket, head));
    this.httpServer.on('clientError', (e: NodeJS.ErrnoException, socket: net.Socket) => {
      if (socket.writable && e.code !== 'ECONNRESET' && e.code !== 'EPIPE') {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      } else {
        socket.destroy();
      }
    });
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  /** Starts listening; rejects with PortInUseError when the port is taken. */
  static async listen(opts: TrafficSwitchOptions): Promise<TrafficSwitch> {
    const sw = new TrafficSwitch(opts);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        sw.server.off('listening', onListening);
        if (e.code === 'EADDRINUSE') reject(new PortInUseError(opts.publicPort, sw.host, opts.environment));
        else if (e.code === 'EACCES') {
          reject(new Error(`port ${opts.publicPort} on ${sw.host} needs privileges the agent does not have${opts.environment ? ` (environment "${opts.environment}")` : ''}: use a port above 1023`));
        } else reject(e);
      };
      const onListening = () => {
        sw.server.off('error', onError);
        resolve();
      };
      sw.server.once('error', onError);
      sw.server.once('listening', onListening);
      sw.server.listen({ port: opts.publicPort, host: sw.host, exclusive: true });
    });
    sw.boundPort = (sw.server.address() as net.AddressInfo).port;
    sw.server.on('error', () => {
      // After listening, errors are per connection and handled there.
    });
    return sw;
  }

  /** The port the switch listens on. */
  get publicPort(): number {
    return this.boundPort;
  }

  /** The address new connections go to (host:port), or null. */
  get upstream(): string | null {
    return this.current;
  }

  /**
   * Sends new connections (and new HTTP requests) to `addr` from now on. What is in flight to the
   * previous upstream finishes there; `drain` says when it has.
   */
  setUpstream(addr: string | null): void {
    if (addr !== null) checkAddress(addr);
    this.current = addr;
  }

  /** Upstream connections open to `addr` now (in-flight HTTP requests, piped connections). */
  connectionsTo(addr: string): number {
    return this.openByUpstream.get(addr) ?? 0;
  }

  /**
   * Resolves true once no connection to `addr` remains, or false when `timeoutMs` passes first
   * (or `signal` aborts). Call it after `setUpstream` moved traffic away from `addr`.
   */
  drain(addr: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.connectionsTo(addr) === 0 || this.disposed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        addr,
        done: (drained: boolean) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          this.drains.delete(waiter);
          resolve(drained);
        },
      };
      const onAbort = () => waiter.done(false);
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.drains.add(waiter);
    });
  }

  get stats(): SwitchStats {
    return {
      ...this.counters,
      open: this.clients.size,
      upstreams: Object.fromEntries([...this.openByUpstream].filter(([, n]) => n > 0)),
    };
  }

  /** Takes no new connection; those open go on (dispose closes them). */
  stopListening(): void {
    this.server.close();
  }

  /** Stops listening and closes every open connection, both sides. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.server.close();
    for (const s of this.clients) s.destroy();
    for (const s of this.upstreamSockets) s.destroy();
    for (const d of [...this.drains]) d.done(true);
  }

  // -------------------------------------------------------------------------------------------

  private accept(client: net.Socket): void {
    if (this.disposed) {
      client.destroy();
      return;
    }
    this.counters.accepted++;
    this.clients.add(client);
    client.setNoDelay(true);
    client.on('error', () => client.destroy());
    client.once('close', () => this.clients.delete(client));
    if (this.mode === 'tcp') {
      void this.pipeBytes(client, Buffer.alloc(0));
      return;
    }
    // Read the first line to tell HTTP/1 from anything else. A client that says nothing for a
    // while may speak a server-first protocol: pipe it as bytes.
    let first: Buffer = Buffer.alloc(0);
    const decide = (kind: 'http' | 'tcp') => {
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
      client.pause();
      if (client.destroyed) return;
      if (kind === 'http') {
        this.httpServer.emit('connection', client);
        client.emit('data', first);
      } else {
        void this.pipeBytes(client, first);
      }
    };
    const onData = (chunk: Buffer) => {
      first = first.length ? Buffer.concat([first, chunk]) : chunk;
      const kind = classify(first);
      if (kind !== 'more') decide(kind);
    };
    const onEnd = () => decide('tcp');
    const timer = setTimeout(() => decide('tcp'), this.sniffMs);
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('close', () => clearTimeout(timer));
  }

  /** Pipes a connection as bytes to the current upstream; it stays there until it closes. */
  private async pipeBytes(client: net.Socket, first: Buffer): Promise<void> {
    this.counters.tcp++;
    if (this.current === null) {
      this.counters.failed++;
      client.destroy();
      return;
    }
    const up = await this.dial();
    if ('error' in up) {
      this.counters.failed++;
      client.destroy();
      return;
    }
    if (client.destroyed) {
      up.socket.destroy();
      return;
    }
    joinSockets(client, up.socket, first);
  }

  private forwardRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.counters.requests++;
    if (this.current === null) {
      this.counters.failed++;
      answerNotLive(res, this.environment);
      return;
    }
    void this.dial().then((up) => {
      if ('error' in up) {
        this.counters.failed++;
        answerBadGateway(res, this.environment, up.error);
        return;
      }
      if (res.destroyed || (req.destroyed && !req.complete)) {
        up.socket.destroy();
        return;
      }
      const upReq = http.request({
        method: req.method,
        path: req.url,
        // A flat list keeps names and repeated headers as they came.
        headers: requestHeaders(req),
        setHost: false,
        createConnection: () => up.socket,
      });
      upReq.on('response', (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, responseHeaders(upRes.rawHeaders));
        upRes.pipe(res);
        upRes.on('error', () => res.destroy());
        upRes.on('close', () => {
          if (!upRes.complete) res.destroy();
        });
      });
      upReq.on('error', (e) => {
        if (!res.headersSent) {
          this.counters.failed++;
          answerBadGateway(res, this.environment, `${up.addr}: ${(e as NodeJS.ErrnoException).code ?? e.message}`);
        } else {
          res.destroy();
        }
      });
      res.on('close', () => {
        if (!res.writableFinished) upReq.destroy();
      });
      req.pipe(upReq);
    });
  }

  private forwardUpgrade(req: http.IncomingMessage, client: net.Socket, head: Buffer): void {
    if (this.current === null) {
      this.counters.failed++;
      if (client.writable) client.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    void this.dial().then((up) => {
      if ('error' in up) {
        this.counters.failed++;
        if (client.writable) client.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      if (client.destroyed) {
        up.socket.destroy();
        return;
      }
      let lines = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      joinSockets(client, up.socket, Buffer.concat([Buffer.from(lines + '\r\n', 'latin1'), head]));
    });
  }

  /**
   * A connection to the current upstream. It counts for that upstream from the moment it is
   * chosen, so `drain` waits for connections still being set up. Refused connections are tried
   * again (on the upstream current then) until `connectTimeoutMs`.
   */
  private async dial(): Promise<{ socket: net.Socket; addr: string } | { error: string }> {
    const deadline = Date.now() + this.connectTimeoutMs;
    let lastError = 'no upstream is set';
    for (;;) {
      if (this.disposed) return { error: 'the switch is closed' };
      const addr = this.current;
      if (addr) {
        this.count(addr, +1);
        try {
          const socket = await connect(addr, Math.max(250, deadline - Date.now()));
          if (this.disposed) {
            socket.destroy();
            this.count(addr, -1);
            return { error: 'the switch is closed' };
          }
          this.upstreamSockets.add(socket);
          socket.once('close', () => {
            this.upstreamSockets.delete(socket);
            this.count(addr, -1);
          });
          return { socket, addr };
        } catch (e) {
          this.count(addr, -1);
          const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
          lastError = `${addr}: ${code}`;
          if (code !== 'ECONNREFUSED' && code !== 'ECONNRESET') return { error: lastError };
        }
      }
      if (Date.now() + 50 > deadline) return { error: lastError };
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private count(addr: string, delta: number): void {
    const n = (this.openByUpstream.get(addr) ?? 0) + delta;
    if (n > 0) {
      this.openByUpstream.set(addr, n);
      return;
    }
    this.openByUpstream.delete(addr);
    for (const d of [...this.drains]) if (d.addr === addr) d.done(true);
  }
}

/**
 * The agent's switches, one per environment: `hold` listens on a public port as soon as it is
 * allocated, `route` (RuntimeServices.route) points it at a release (creating the switch when the
 * port was not held) and moves it when the environment's public port changes; `drain` and `close`
 * are what a runtime needs to retire an instance and to remove an environment.
 */
export class SwitchBoard implements IDisposable {
  private readonly switches = new Map<string, TrafficSwitch>();
  /** Switches whose environment moved to another port, finishing what they carry. */
  private readonly retiring = new Set<TrafficSwitch>();
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly recentPorts = new Map<number, number>();
  private disposed = false;

  constructor(private readonly opts: Omit<TrafficSwitchOptions, 'publicPort' | 'upstream' | 'environment'> = {}) {}

  /** Points the environment's public port at `upstream`, listening on it first if needed. */
  route(environment: string, publicPort: number, upstream: string): Promise<void> {
    checkAddress(upstream);
    return this.serialize(environment, async () => {
      if (this.disposed) throw new Error('the agent is stopping: no traffic is routed any more');
      const existing = this.switches.get(environment);
      if (existing && (existing.publicPort === publicPort || publicPort === 0)) {
        existing.setUpstream(upstream);
        return;
      }
      this.checkShared(environment, publicPort);
      const sw = await TrafficSwitch.listen({ ...this.opts, publicPort, upstream, environment });
      this.switches.set(environment, sw);
      if (existing) {
        // The port changed: the old one stops taking connections; what it carries finishes.
        const old = existing.upstream;
        existing.stopListening();
        this.retiring.add(existing);
        void (old ? existing.drain(old, 30_000) : Promise.resolve(true)).then(() => {
          this.retiring.delete(existing);
          existing.dispose();
        });
      }
    });
  }

  /**
   * Listens on the environment's public port before any release is routed to it, so the port is
   * the environment's from the moment it is chosen: no other program (nor a container Docker
   * publishes on a port of the same ephemeral range) can take it before the first deploy routes
   * to it. Until then HTTP requests are answered 503. `publicPort` 0 lets the kernel pick a free
   * port, never one in `avoid` nor one handed out to an instance in the last minute. Resolves
   * the port the environment's switch listens on: the one it had already, when it has one.
   */
  hold(environment: string, publicPort: number, avoid: ReadonlySet<number> = new Set()): Promise<number> {
    return this.serialize(environment, async () => {
      const existing = this.switches.get(environment);
      if (existing) return existing.publicPort;
      if (this.disposed) throw new Error('the agent is stopping: no port is held any more');
      if (publicPort) this.checkShared(environment, publicPort);
      const unwanted: TrafficSwitch[] = [];
      try {
        for (let i = 0; ; i++) {
          const sw = await TrafficSwitch.listen({ ...this.opts, publicPort, upstream: null, environment });
          if (!publicPort && i < 20 && (avoid.has(sw.publicPort) || this.handedOut(sw.publicPort))) {
            // Kept listening until a good one is found, so the kernel picks another.
            unwanted.push(sw);
            continue;
          }
          if (this.disposed) {
            sw.dispose();
            throw new Error('the agent is stopping: no port is held any more');
          }
          this.switches.set(environment, sw);
          return sw.publicPort;
        }
      } finally {
        for (const sw of unwanted) sw.dispose();
      }
    });
  }

  /** See TrafficSwitch.drain; true at once when the environment has no switch. */
  drain(environment: string, upstream: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const sw = this.switches.get(environment);
    return sw ? sw.drain(upstream, timeoutMs, signal) : Promise.resolve(true);
  }

  /** Stops serving the environment's public port, and lets it go. */
  close(environment: string): void {
    const sw = this.switches.get(environment);
    this.switches.delete(environment);
    sw?.dispose();
  }

  get(environment: string): TrafficSwitch | undefined {
    return this.switches.get(environment);
  }

  /**
   * A free port on 127.0.0.1 for an instance (RuntimeServices.allocatePort). A port handed out in
   * the last minute is not handed out again, so two instances started close together differ.
   */
  async allocatePort(): Promise<number> {
    const now = Date.now();
    for (const [port, at] of this.recentPorts) if (now - at > 60_000) this.recentPorts.delete(port);
    for (let i = 0; ; i++) {
      const port = await freePort();
      const taken = this.recentPorts.has(port) || [...this.switches.values()].some((s) => s.publicPort === port);
      if (!taken || i >= 20) {
        this.recentPorts.set(port, now);
        return port;
      }
    }
  }

  /** Another environment's switch listens on the port. */
  private checkShared(environment: string, publicPort: number): void {
    for (const [other, sw] of this.switches) {
      if (other !== environment && sw.publicPort === publicPort) throw new PortInUseError(publicPort, sw.host, environment, other);
    }
  }

  /** The port was handed out to an instance in the last minute. */
  private handedOut(port: number): boolean {
    const at = this.recentPorts.get(port);
    return at !== undefined && Date.now() - at <= 60_000;
  }

  dispose(): void {
    this.disposed = true;
    for (const sw of [...this.switches.values(), ...this.retiring]) sw.dispose();
    this.switches.clear();
    this.retiring.clear();
  }

  private serialize<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.pending.get(key) ?? Promise.resolve();
    const next = before.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.pending.set(key, settled);
    void settled.then(() => {
      if (this.pending.get(key) === settled) this.pending.delete(key);
    });
    return next;
  }
}

/** A port free on `host` now (the kernel's pick). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT']);

/** Is this the start of an HTTP/1 request? `more`: cannot tell yet. */
function classify(buf: Buffer): 'http' | 'tcp' | 'more' {
  const text = buf.toString('latin1', 0, Math.min(buf.length, MAX_REQUEST_LINE));
  const nl = text.indexOf('\n');
  if (nl < 0) {
    if (buf.length >= MAX_REQUEST_LINE) return 'tcp';
    const sp = text.indexOf(' ');
    const method = sp < 0 ? text : text.slice(0, sp);
    if (sp < 0) return [...HTTP_METHODS].some((m) => m.startsWith(method)) ? 'more' : 'tcp';
    return HTTP_METHODS.has(method) ? 'more' : 'tcp';
  }
  const line = text.slice(0, nl).replace(/\r$/, '');
  const m = /^([A-Z]+) \S+ HTTP\/1\.[01]$/.exec(line);
  return m && HTTP_METHODS.has(m[1]) ? 'http' : 'tcp';
}

function connect(addr: string, timeoutMs: number): Promise<net.Socket> {
  const [host, port] = splitAddress(addr);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error('ETIMEDOUT'), { code: 'ETIMEDOUT' })), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', reject);
      socket.setNoDelay(true);
      socket.on('error', () => socket.destroy());
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Pipes two sockets both ways; half-closes pass through; either one failing closes both. */
function joinSockets(client: net.Socket, upstream: net.Socket, first: Buffer): void {
  if (first.length) upstream.write(first);
  client.pipe(upstream);
  upstream.pipe(client);
  // A side that closed cleanly (both directions ended) lets the other finish flushing; one that
  // was cut takes the other down with it.
  const onClose = (closed: net.Socket, other: net.Socket) => () => {
    if (!(closed.readableEnded && closed.writableFinished)) other.destroy();
  };
  client.once('close', onClose(client, upstream));
  upstream.once('close', onClose(upstream, client));
  client.resume();
}

/** Headers that describe one hop, not the message: never forwarded as they are. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect']);

function hopHeaders(connection: string | string[] | undefined): Set<string> {
  const named = new Set(HOP_BY_HOP);
  for (const v of [connection ?? []].flat()) for (const t of v.split(',')) if (t.trim()) named.add(t.trim().toLowerCase());
  return named;
}

function requestHeaders(req: http.IncomingMessage): string[] {
  const skip = hopHeaders(req.headers.connection);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    const lower = name.toLowerCase();
    if (skip.has(lower)) continue;
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor ? `${forwardedFor}, ${req.rawHeaders[i + 1]}` : req.rawHeaders[i + 1];
      continue;
    }
    out.push(name, req.rawHeaders[i + 1]);
  }
  const peer = req.socket.remoteAddress ?? '127.0.0.1';
  out.push('X-Forwarded-For', forwardedFor ? `${forwardedFor}, ${peer}` : peer);
  if (req.headers['x-forwarded-proto'] === undefined) out.push('X-Forwarded-Proto', 'http');
  // A chunked body stays chunked (Node frames it again on the way out).
  if (req.headers['transfer-encoding']) out.push('Transfer-Encoding', 'chunked');
  return out;
}

function responseHeaders(raw: string[]): string[] {
  const connection: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === 'connection') connection.push(raw[i + 1]);
  const skip = hopHeaders(connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!skip.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  return out;
}

function answerBadGateway(res: http.ServerResponse, environment: string | undefined, why: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const text = `conveyor: no instance of ${environment ? `environment "${environment}"` : 'the environment'} answered (${why})\n`;
  res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function answerNotLive(res: http.ServerResponse, environment: string | undefined): void {
  const text = `conveyor: no release is live in ${environment ? `environment "${environment}"` : 'the environment'} yet: deploy one to it\n`;
  res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function checkAddress(addr: string): void {
  const [host, port] = splitAddress(addr);
  if (!host || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`"${addr}" is not an upstream address (host:port)`);
}
