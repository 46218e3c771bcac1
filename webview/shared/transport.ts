/**
 * How a page reaches the agent. In a browser tab the agent served the page: same origin, the
 * HttpOnly cookie authenticates every request and the WebSocket. In an editor webview the root
 * element carries the agent's address and token: requests send `Authorization: Bearer`, the
 * WebSocket `?token=`, and the extension posts a new connection when the agent restarts.
 */
import type { ApiError } from '../../agent/protocol';
import type { PageHost } from './shell';

/** Where the agent is and how to authenticate to it. */
export interface Connection {
  /** http://127.0.0.1:PORT, or '' for the page's own origin. */
  base: string;
  /** Null: the cookie authenticates. */
  token: string | null;
}

/** The agent answered with an error status. */
export class AgentError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(body.error + (body.fix ? ` (${body.fix})` : ''));
    this.name = 'AgentError';
  }
}

/** The agent did not answer at all. */
export class AgentUnreachable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentUnreachable';
  }
}

/** The page's requests to the agent: JSON, text, and the event stream's address. */
export class Transport {
  private connection: Connection;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly host: PageHost,
    connection: Connection,
  ) {
    this.connection = connection;
  }

  /** The transport the page's root element describes (data-base and data-token in a webview). */
  static fromRoot(root: HTMLElement, host: PageHost): Transport {
    if (host === 'vscode') return new Transport(host, { base: root.dataset.base ?? '', token: root.dataset.token ?? null });
    return new Transport(host, { base: '', token: null });
  }

  /** A new address or token (the agent restarted); the event stream reconnects with it. */
  setConnection(c: Connection): void {
    this.connection = c;
    for (const l of this.listeners) l();
  }

  onDidChangeConnection(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** GET (or another method) of an /api route, answered with JSON. */
  async json<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
    const res = await this.request(path, init);
    return (await res.json()) as T;
  }

  /** GET of a route answered with text (logs). */
  async text(path: string): Promise<string> {
    return (await this.request(path, {})).text();
  }

  /** The WebSocket address of the event stream, after `since` (undefined: from now). */
  eventsUrl(since: number | undefined): string {
    const { base, token } = this.connection;
    const origin = base ? base.replace(/^http/, 'ws') : `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
    const q = new URLSearchParams();
    if (since !== undefined) q.set('since', String(since));
    if (token) q.set('token', token);
    const query = q.toString();
    return `${origin}/api/events${query ? `?${query}` : ''}`;
  }

  private async request(path: string, init: { method?: string; body?: unknown }): Promise<Response> {
    const { base, token } = this.connection;
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method: init.method ?? 'GET',
        headers,
        body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
        credentials: token ? 'omit' : 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      throw new AgentUnreachable(`the agent did not answer: ${(e as Error).message}`);
    }
    if (!res.ok) {
      let body: ApiError;
      try {
        body = (await res.json()) as ApiError;
      } catch {
        body = { error: `${res.status} ${res.statusText}` };
      }
      throw new AgentError(res.status, body);
    }
    return res;
  }
}
