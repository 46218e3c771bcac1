import * as http from 'node:http';
import WebSocket from 'ws';

/** An answer as the wire carried it. */
export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request exactly as the caller wants it on the wire. */
export interface RawRequest {
  port: number;
  method: string;
  /** Path and query, sent as written. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Connections to reuse (keep-alive); default a new connection. */
  agent?: http.Agent;
  /** A bound on the whole exchange, so that a hung answer fails the caller instead of the suite. */
  timeoutMs?: number;
}

/**
 * One HTTP request with nothing added but what Node must add: Host and Origin are whatever the
 * caller sets (an attacker's page would set them too). Rejects on a network error or time-out.
 */
export function rawRequest(r: RawRequest): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: r.port, method: r.method, path: r.path, headers: r.headers, agent: r.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(r.timeoutMs ?? 30_000, () => req.destroy(new Error(`no answer to ${r.method} ${r.path} within ${r.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(r.body);
  });
}

/** Opens a WebSocket: resolves 101 when it opens (and closes it), else the refusal's status and body. */
export function wsHandshake(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers, handshakeTimeout: 10_000 });
    ws.on('open', () => {
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', (e) => reject(e));
  });
}

/** The answer's body as an ApiError, or undefined when it is not JSON with an "error" text. */
export function apiErrorOf(a: RawAnswer | { body: string }): { error: string; fix?: string } | undefined {
  try {
    const v = JSON.parse(a.body) as { error?: unknown; fix?: unknown };
    return v && typeof v === 'object' && typeof v.error === 'string' && v.error.length > 0 ? (v as { error: string; fix?: string }) : undefined;
  } catch {
    return undefined;
  }
}
