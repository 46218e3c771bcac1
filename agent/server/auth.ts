import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Who may talk to the agent: a caller on this machine that holds the token from the discovery
 * file (mode 0600). A browser page from another site cannot: its Origin is refused, and a DNS
 * rebinding attack is refused by the Host check, before the token is even looked at.
 *
 * The token comes as `Authorization: Bearer`, as `?token=` where allowed (WebSockets), or as the
 * dashboard's cookie, which `conveyor dashboard` sets in a browser. The cookie is taken only from
 * the agent's own pages: a request without Origin or with the agent's own, and not sent from
 * another site (Sec-Fetch-Site). Editor webviews send the token itself; in a browser-hosted
 * editor (code-server) their origin is the editor's loopback address, which a token may come from.
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
  if (origin !== undefined && !isAllowedOrigin(origin, port) && !isLoopbackOrigin(origin)) {
    return { status: 403, error: `Origin "${origin}" may not call the agent`, fix: 'only the editor and pages the agent serves may call it' };
  }
  const given = bearer(req) ?? (opts.allowQueryToken ? queryToken(req) : undefined);
  if (given) {
    if (!safeEqual(given, token)) {
      return { status: 401, error: 'wrong token', fix: 'read the current token from .conveyor/agent.json (it changes when the agent restarts)' };
    }
    return { status: 200 };
  }
  const cookie = cookieToken(req, port);
  if (cookie !== undefined && (origin === undefined || isOwnOrigin(origin, port)) && fromOwnPages(req)) {
    if (!safeEqual(cookie, token)) {
      return { status: 401, error: 'the dashboard sign-in is from an earlier agent', fix: 'run "conveyor dashboard" and open the address it prints' };
    }
    return { status: 200 };
  }
  return { status: 401, error: 'missing token', fix: 'send "Authorization: Bearer <token>" with the token from .conveyor/agent.json (in a browser: run "conveyor dashboard")' };
}

/** The name of the dashboard's cookie: one per port, as cookies are shared by every port of a host. */
export function dashboardCookieName(port: number): string {
  return `conveyor_${port}`;
}

/** The Set-Cookie value that signs a browser in to the dashboard of the agent on `port`. */
export function dashboardCookie(port: number, token: string): string {
  return `${dashboardCookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`;
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

/** The agent's own address: http on a loopback host, at its port. */
export function isOwnOrigin(origin: string, port: number): boolean {
  try {
    const u = new URL(origin);
    return u.protocol === 'http:' && isLoopbackHost(u.host, port);
  } catch {
    return false;
  }
}

/** A page on this machine: a loopback host at any port (a browser-hosted editor's webviews). */
export function isLoopbackOrigin(origin: string): boolean {
  try {
    const u = new URL(origin);
    return (u.protocol === 'http:' || u.protocol === 'https:') && LOOPBACK_HOSTS.has(u.hostname.toLowerCase());
  } catch {
    return false;
  }
}

/** Not sent by a page of another origin (browsers that send Sec-Fetch-Site say so). */
function fromOwnPages(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  return site === undefined || site === 'same-origin' || site === 'none';
}

function cookieToken(req: IncomingMessage, port: number): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  const name = dashboardCookieName(port);
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
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
