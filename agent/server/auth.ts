import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Who may talk to the agent: a caller on this machine that holds the token from the discovery
 * file (mode 0600). A browser page from another site cannot: its Origin is refused, and a DNS
 * rebinding attack is refused by the Host check, before the token is even looked at.
 */
export interface AuthVerdict {
  status: 200 | 401 | 403;
  error?: string;
  fix?: string;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

export function checkRequest(req: IncomingMessage, token: string, port: number, opts: { allowQueryToken: boolean }): AuthVerdict {
  const host = req.headers.host;
  if (!host || !isLoopbackHost(host, port)) {
    return { status: 403, error: `Host "${host ?? ''}" is not this agent's loopback address`, fix: `connect to http://127.0.0.1:${port}` };
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !isAllowedOrigin(origin, port)) {
    return { status: 403, error: `Origin "${origin}" may not call the agent`, fix: 'only the editor and pages the agent serves may call it' };
  }
  const given = bearer(req) ?? (opts.allowQueryToken ? queryToken(req) : undefined);
  if (!given) {
    return { status: 401, error: 'missing token', fix: 'send "Authorization: Bearer <token>" with the token from .conveyor/agent.json' };
  }
  if (!safeEqual(given, token)) {
    return { status: 401, error: 'wrong token', fix: 'read the current token from .conveyor/agent.json (it changes when the agent restarts)' };
  }
  return { status: 200 };
}

export function isLoopbackHost(host: string, port: number): boolean {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host.trim().toLowerCase());
  if (!m) return false;
  return LOOPBACK_HOSTS.has(m[1]) && (m[2] === undefined ? port === 80 : Number(m[2]) === port);
}

/** The agent's own pages, and VS Code webviews (whose origin is a vscode-webview:// URI). */
export function isAllowedOrigin(origin: string, port: number): boolean {
  if (origin.startsWith('vscode-webview://')) return true;
  try {
    const u = new URL(origin);
    return u.protocol === 'http:' && isLoopbackHost(u.host, port);
  } catch {
    return false;
  }
}

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m?.[1];
}

function queryToken(req: IncomingMessage): string | undefined {
  try {
    return new URL(req.url ?? '/', 'http://x').searchParams.get('token') ?? undefined;
  } catch {
    return undefined;
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
