/**
 * The agent's event stream for a page: a WebSocket that reconnects after any drop, with backoff,
 * and resumes after the last sequence number it delivered, so the page gets every event once and
 * in order across reconnects. After a reconnect the page re-fetches what it shows; when the
 * agent's history is not the one followed (its last seq is behind), the page starts over.
 */
import type { SequencedEvent, ServerMessage } from '../../agent/protocol';
import { AgentError, AgentUnreachable, type Transport } from './transport';

/**
 * live: hello received; reconnecting: dropped, trying again; unreachable: the agent does not
 * answer at all (stopped, or moved to another port); unauthorized: the token or cookie is no
 * longer valid (the agent restarted).
 */
export type StreamStatus = 'connecting' | 'live' | 'reconnecting' | 'unreachable' | 'unauthorized';

/** Where the stream starts and who is told what. */
export interface EventClientOptions {
  /** Deliver events after this seq; undefined: only those after the hello. */
  since?: number;
  onEvents(events: SequencedEvent[]): void;
  onStatus?(status: StreamStatus): void;
  /** Connected again after a drop: re-fetch what the page shows. */
  onReconnected?(): void;
  /** The agent's history is behind the last seq delivered (it was reset): start the page over. */
  onReset?(): void;
}

const PING_MS = 25_000;
const MAX_BACKOFF_MS = 5_000;

/** One page's event stream; `start` opens it, `stop` closes it for good. */
export class EventClient {
  private cursor: number | undefined;
  private socket: WebSocket | undefined;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ping: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  private connectedOnce = false;
  private status: StreamStatus = 'connecting';
  private readonly unsubscribe: () => void;

  constructor(
    private readonly transport: Transport,
    private readonly opts: EventClientOptions,
  ) {
    this.cursor = opts.since;
    this.unsubscribe = transport.onDidChangeConnection(() => this.reconnectNow());
  }

  /** The seq of the last event delivered (or of the hello, before any). */
  get lastSeq(): number | undefined {
    return this.cursor;
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    clearTimeout(this.timer);
    clearInterval(this.ping);
    this.socket?.close();
    this.socket = undefined;
  }

  /** Drops the socket (if any) and connects at once. */
  reconnectNow(): void {
    if (this.stopped) return;
    this.attempt = 0;
    clearTimeout(this.timer);
    const old = this.socket;
    this.socket = undefined;
    old?.close();
    this.connect();
  }

  private setStatus(s: StreamStatus): void {
    if (s === this.status) return;
    this.status = s;
    this.opts.onStatus?.(s);
  }

  private connect(): void {
    if (this.stopped) return;
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.transport.eventsUrl(this.cursor));
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.onmessage = (m) => {
      if (socket !== this.socket) return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(String(m.data)) as ServerMessage;
      } catch {
        return;
      }
      this.onMessage(msg);
    };
    socket.onclose = () => {
      if (socket !== this.socket) return;
      this.socket = undefined;
      clearInterval(this.ping);
      if (!this.stopped) void this.afterDrop();
    };
  }

  private onMessage(msg: ServerMessage): void {
    if (msg.type === 'hello') {
      if (this.cursor !== undefined && msg.lastSeq < this.cursor) {
        // Another history (the .conveyor folder was removed): what the page shows is not in it.
        this.cursor = undefined;
        this.socket?.close();
        this.socket = undefined;
        this.opts.onReset?.();
        this.connect();
        return;
      }
      this.cursor ??= msg.lastSeq;
      this.attempt = 0;
      clearInterval(this.ping);
      this.ping = setInterval(() => this.socket?.send(JSON.stringify({ type: 'ping' })), PING_MS);
      this.setStatus('live');
      if (this.connectedOnce) this.opts.onReconnected?.();
      this.connectedOnce = true;
      return;
    }
    if (msg.type === 'events') {
      const fresh = this.cursor === undefined ? msg.events : msg.events.filter((e) => e.seq > this.cursor!);
      if (fresh.length === 0) return;
      this.cursor = fresh[fresh.length - 1].seq;
      this.opts.onEvents(fresh);
    }
  }

  /** Tells a refused token (the agent restarted) from an agent that is away, and tries again. */
  private async afterDrop(): Promise<void> {
    let status: StreamStatus = 'reconnecting';
    try {
      await this.transport.json('/api/health');
    } catch (e) {
      // A new token is needed: the extension posts one; in a browser, `conveyor dashboard` sets one.
      if (e instanceof AgentError && (e.status === 401 || e.status === 403)) status = 'unauthorized';
      else if (e instanceof AgentUnreachable) status = 'unreachable';
    }
    if (this.stopped) return;
    this.setStatus(status);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.attempt++);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
