/**
 * The dashboards in a browser: the agent serves the pages of dist/webview/ under /dashboard/.
 *
 *   conveyor dashboard ──prints──> http://127.0.0.1:PORT/dashboard/?token=TOKEN
 *   GET /dashboard/?token=TOKEN ──> Set-Cookie (HttpOnly, SameSite=Strict) + redirect to /dashboard/
 *   GET /dashboard/, run.html, metrics.html, timeline.html ──> the page, its CSP with a fresh nonce
 *   the page ──fetch /api/..., WebSocket /api/events (same origin)──> the cookie authenticates
 *
 * Without a valid token or cookie every /dashboard/ address answers 401 with a page that says to
 * run `conveyor dashboard`. Editor webviews call /api directly with the token: `dashboardCors`
 * answers their CORS preflights.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { escapeHtml, isDashboardPage, pageShell, type DashboardPage } from '../../webview/shared/shell';
import { checkRequest, dashboardCookie, isAllowedOrigin, isLoopbackHost, isLoopbackOrigin, isOwnOrigin, type AuthVerdict } from './auth';

/** What the dashboard routes need: the agent's token and port. */
export interface DashboardOptions {
  token: string;
  /** The port the agent listens on (known once it is bound). */
  port(): number;
  /** The built pages; default: dist/webview beside the bundle (or of the checkout). */
  root?: string;
}

/** The address that signs a browser in to the dashboard. */
export function dashboardUrl(port: number, token: string): string {
  return `http://127.0.0.1:${port}/dashboard/?token=${encodeURIComponent(token)}`;
}

/** Where the built pages are: dist/webview beside dist/cli.js, or in the checkout when running from out/. */
export function dashboardRoot(): string | undefined {
  const candidates = [path.join(__dirname, 'webview'), path.resolve(__dirname, '..', '..', '..', 'dist', 'webview')];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'run.js')));
}

/**
 * The Content-Security-Policy of a page the agent serves: its own scripts with the nonce, nothing
 * inline. (The response header adds frame-ancestors, which a meta tag cannot carry.)
 */
export function dashboardCsp(nonce: string, host: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self' ws://${host}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

const ASSET = /^[a-z]+\.(js|css|js\.map|css\.map|js\.LEGAL\.txt)$/;
const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json; charset=utf-8',
  txt: 'text/plain; charset=utf-8',
};

/** The /dashboard/ routes; mount before the API's token check (they check the token or cookie themselves). */
export function dashboardRouter(opts: DashboardOptions): express.Router {
  const router = express.Router();
  const root = opts.root ?? dashboardRoot();

  router.use((req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    const url = new URL(req.originalUrl, 'http://agent');
    // /dashboard without its slash: the pages' relative addresses need it.
    if (url.pathname === '/dashboard') {
      res.redirect(301, `/dashboard/${url.search}`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.status(405).setHeader('Allow', 'GET, HEAD').type('text/plain').send('the dashboard only answers GET\n');
      return;
    }
    const signIn = url.searchParams.has('token');
    const verdict = checkRequest(req, opts.token, opts.port(), { allowQueryToken: signIn });
    if (verdict.status !== 200) {
      refuse(res, verdict);
      return;
    }
    if (signIn) {
      // The token moves into an HttpOnly cookie; the address the user sees (and keeps) loses it.
      url.searchParams.delete('token');
      res.setHeader('Set-Cookie', dashboardCookie(opts.port(), opts.token));
      res.redirect(303, `${url.pathname}${url.search}`);
      return;
    }
    next();
  });

  router.get('/', (req, res) => sendPage(req, res, 'run', root));
  router.get('/:file', (req, res, next) => {
    const file = String(req.params.file);
    const page = file.replace(/\.html$/, '');
    if (file.endsWith('.html') && isDashboardPage(page)) return sendPage(req, res, page, root);
    if (!ASSET.test(file)) return next();
    if (!root) return notBuilt(res);
    fs.readFile(path.join(root, file), (error, data) => {
      if (error) return next();
      res.type(TYPES[file.split('.').pop()!]).send(data);
    });
  });
  router.use((req, res) => {
    res.status(404).type('text/plain').send(`no dashboard file ${req.path}; the pages are run.html, metrics.html and timeline.html\n`);
  });
  return router;
}

/**
 * CORS for editor webviews, whose pages have their own origin (vscode-webview://, or the
 * editor's loopback address in code-server) and call /api with the token: a preflight is
 * answered here, before the token check (preflights carry no credentials); answers to the real
 * requests name the origin so the page may read them.
 */
export function dashboardCors(port: () => number): express.RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    const host = req.headers.host;
    if (!origin || !host || !isLoopbackHost(host, port()) || isOwnOrigin(origin, port())) return next();
    if (!isAllowedOrigin(origin, port()) && !isLoopbackOrigin(origin)) return next();
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Vary', 'Origin');
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST, DELETE');
      res.setHeader('Access-Control-Allow-Headers', 'authorization, content-type');
      res.setHeader('Access-Control-Max-Age', '600');
      if (req.headers['access-control-request-private-network'] === 'true') res.setHeader('Access-Control-Allow-Private-Network', 'true');
      res.status(204).end();
      return;
    }
    next();
  };
}

function sendPage(req: Request, res: Response, page: DashboardPage, root: string | undefined): void {
  if (!root) return notBuilt(res);
  const nonce = randomBytes(18).toString('base64');
  const csp = dashboardCsp(nonce, req.headers.host!);
  res.setHeader('Content-Security-Policy', `${csp}; frame-ancestors 'none'`);
  res.type('html').send(pageShell({ page, host: 'browser', nonce, csp, scriptUri: `${page}.js`, styleUri: `${page}.css` }));
}

function refuse(res: Response, verdict: AuthVerdict): void {
  res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
  const title = verdict.status === 401 ? 'Sign in to the Conveyor dashboard' : 'The Conveyor agent refused this page';
  const what =
    verdict.status === 401
      ? 'Run <code>conveyor dashboard</code> in the workspace: it prints the address that signs this browser in, and opens it when it can.'
      : `${escapeHtml(verdict.error ?? 'refused')}${verdict.fix ? ` (${escapeHtml(verdict.fix)})` : ''}.`;
  res
    .status(verdict.status)
    .type('html')
    .send(`<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${what}</p>${verdict.status === 401 ? `<p>${escapeHtml(verdict.error ?? '')}</p>` : ''}</body></html>\n`);
}

function notBuilt(res: Response): void {
  res.status(503).type('text/plain').send('the dashboard pages are not built (dist/webview is missing): run "npm run build"\n');
}
