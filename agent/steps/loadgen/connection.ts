import * as net from 'node:net';
import { reportUnexpected } from '../../util/lifecycle';
import type { PreparedRequest } from './request';
import { ResponseParser } from './response-parser';

/** What a connection reports to the run: each request ends in exactly one of these. */
export interface ConnectionListener {
  /** A whole response arrived, `latencyMs` after the request was sent. */
  response(conn: Connection, status: number, latencyMs: number): void;
  /** The request failed: `kind` is ECONNREFUSED, timeout, reset, bad response or another error code; `detail` says more. */
  failure(conn: Connection, kind: string, detail: string): void;
}

/**
 * One keep-alive connection, one request at a time (a virtual user, or a slot of the open
 * model's pool). It connects on the first request and again after the server closes it or a
 * request fails. A request that finds a reused connection closed under it, before any byte of
 * the answer, is sent again on a fresh one, as browsers do: that is the server ending an idle
 * connection, not a failure.
 */
export class Connection {
  private socket: net.Socket | null = null;
  private readonly parser: ResponseParser;
  /** Requests completed on the current socket. */
  private served = 0;
  private gotBytes = false;
  /** performance.now() when the current request was sent; -1 when idle. */
  private sentAt = -1;
  /** Bytes received over all sockets. */
  bytes = 0;

  constructor(
    private readonly request: PreparedRequest,
    private readonly listener: ConnectionListener,
  ) {
    this.parser = new ResponseParser((status, close) => this.onResponse(status, close));
    this.parser.noBody = request.head;
  }

  get busy(): boolean {
    return this.sentAt >= 0;
  }

  /** Sends the request, connecting first if need be. */
  send(): void {
    this.sentAt = performance.now();
    this.write();
  }

  /** Fails the current request as a time-out if it has waited `timeoutMs`; the connection is dropped. */
  expire(now: number, timeoutMs: number): void {
    if (this.sentAt >= 0 && now - this.sentAt >= timeoutMs) this.fail('timeout', `no answer within ${timeoutMs} ms`);
  }

  /** Drops the connection; a request in flight is forgotten, not reported. */
  close(): void {
    this.sentAt = -1;
    this.drop();
  }

  private write(): void {
    this.gotBytes = false;
    const sock = this.socket ?? this.connect();
    sock.write(this.request.bytes);
  }

  private connect(): net.Socket {
    const sock = net.connect({ host: this.request.host, port: this.request.port, noDelay: true });
    this.socket = sock;
    this.served = 0;
    this.parser.reset();
    sock.on('data', (data: Buffer) => {
      if (this.socket !== sock) return;
      this.bytes += data.length;
      this.gotBytes = true;
      try {
        const problem = this.parser.execute(data);
        if (problem !== null && this.socket === sock) this.fail('bad response', problem);
      } catch (e) {
        reportUnexpected(e);
        if (this.socket === sock) this.fail('error', String(e));
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (this.socket === sock) this.ended(errorKind(e.code), e.message);
    });
    // The server sends nothing after its FIN: the connection is over then, not at 'close'.
    const closed = () => {
      if (this.socket === sock && !this.parser.finish()) this.ended('reset', 'the server closed the connection before the whole answer');
    };
    sock.on('end', closed);
    sock.on('close', closed);
    return sock;
  }

  /** The socket ended or failed. */
  private ended(kind: string, detail: string): void {
    if (this.sentAt < 0) {
      this.drop(); // an idle connection the server closed
      return;
    }
    if (this.served > 0 && !this.gotBytes && kind === 'reset') {
      this.drop();
      this.write();
      return;
    }
    this.fail(kind, detail);
  }

  private onResponse(status: number, close: boolean): void {
    const latency = performance.now() - this.sentAt;
    this.sentAt = -1;
    this.served++;
    if (close) this.drop();
    this.listener.response(this, status, latency);
  }

  private fail(kind: string, detail: string): void {
    this.sentAt = -1;
    this.drop();
    this.listener.failure(this, kind, detail);
  }

  private drop(): void {
    const sock = this.socket;
    if (!sock) return;
    this.socket = null;
    sock.destroy();
  }
}

function errorKind(code: string | undefined): string {
  switch (code) {
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ERR_STREAM_WRITE_AFTER_END':
    case 'ERR_STREAM_DESTROYED':
      return 'reset';
    case undefined:
      return 'error';
    default:
      return code;
  }
}
