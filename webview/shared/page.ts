/**
 * The frame every dashboard page shares: the navigation between the pages, the state of the
 * connection to the agent, a banner for what the user must do (run `conveyor dashboard` again,
 * wait for the agent), and the wiring of transport, host and event stream.
 */
import type { ApiError } from '../../agent/protocol';
import { h, type Child } from './dom';
import { EventClient, type EventClientOptions, type StreamStatus } from './events';
import { Host } from './host';
import type { DashboardPage } from './shell';
import { PAGE_TITLES } from './shell';
import { relativeTime } from './time';
import { AgentError, Transport } from './transport';

/** What a page gets from the frame. */
export interface PageContext {
  root: HTMLElement;
  host: Host;
  transport: Transport;
  /** Where the page puts its content. */
  main: HTMLElement;
  /** Opens the event stream; the frame shows its state. */
  events(opts: EventClientOptions): EventClient;
  /** A link to a page: an anchor in a browser, a message to the extension in a webview. */
  link(page: DashboardPage, params: Record<string, string>, ...children: Child[]): HTMLAnchorElement;
  /** Shows an error from the agent about the page's data (or clears it with null). */
  showError(e: unknown): void;
}

const STATUS_TEXT: Record<StreamStatus, string> = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  unreachable: 'offline',
  unauthorized: 'signed out',
};

/** Builds the frame in #app and returns what the page needs. */
export function startPage(page: DashboardPage): PageContext {
  const root = document.getElementById('app');
  if (!root) throw new Error('the page has no #app element');
  const host = Host.fromDocument(root);
  const transport = Transport.fromRoot(root, host.kind);
  host.onMessage((m) => {
    if (m.type === 'connection') transport.setConnection({ base: m.base, token: m.token });
    if (m.type === 'offline') setBanner(`The Conveyor agent is not running (${m.reason}). The page reconnects when it is back.`, 'warning', 'connection');
  });

  const conn = h('span', { class: 'conn conn-connecting', attrs: { role: 'status', 'aria-live': 'polite' } }, STATUS_TEXT.connecting);
  const banner = h('div', { class: 'banner', attrs: { hidden: true, role: 'alert' } });
  const main = h('main', { class: `page page-${page}` });
  const link = (target: DashboardPage, params: Record<string, string>, ...children: Child[]): HTMLAnchorElement => {
    const a = h('a', { attrs: { href: host.kind === 'browser' ? host.href(target, params) : '#' } }, ...children);
    if (host.kind === 'vscode') {
      a.addEventListener('click', (e) => {
        e.preventDefault();
        host.open(target, params);
      });
    }
    return a;
  };
  const nav = h(
    'nav',
    { class: 'nav', attrs: { 'aria-label': 'Dashboards' } },
    (['run', 'metrics', 'timeline'] as const).map((p) => {
      const a = link(p, {}, PAGE_TITLES[p]);
      if (p === page) a.setAttribute('aria-current', 'page');
      return a;
    }),
  );
  root.replaceChildren(h('header', { class: 'topbar' }, h('span', { class: 'brand' }, 'Conveyor'), nav, conn), banner, main);
  // Relative times ("3 min ago") move on while the page is open.
  setInterval(() => {
    for (const el of main.querySelectorAll('time[datetime]')) {
      const text = relativeTime(el.getAttribute('datetime'));
      if (text && el.textContent !== text) el.textContent = text;
    }
  }, 30_000);

  /** What the banner is about: the connection (cleared once live again) or the page's data (cleared when it loads). */
  let bannerSource: 'connection' | 'page' | null = null;
  function setBanner(text: string | null, level: 'error' | 'warning', source: 'connection' | 'page'): void {
    if (text === null) {
      if (bannerSource !== source) return;
      banner.replaceChildren();
      banner.setAttribute('hidden', '');
      bannerSource = null;
      return;
    }
    banner.replaceChildren(text);
    banner.className = `banner banner-${level}`;
    banner.removeAttribute('hidden');
    bannerSource = source;
  }

  const unreachableText =
    host.kind === 'browser'
      ? `The agent at ${location.host} does not answer. The page reconnects when it is back; if it restarted on another port, run \`conveyor dashboard\` for its new address.`
      : 'The Conveyor agent does not answer. The page reconnects when it is back.';
  const unauthorizedText =
    host.kind === 'browser'
      ? 'The agent no longer accepts this page’s sign-in (it restarted, or the link is old). Run `conveyor dashboard` and open the address it prints.'
      : 'Waiting for the Conveyor agent to accept the editor’s connection again.';

  return {
    root,
    host,
    transport,
    main,
    link,
    events(opts) {
      const client = new EventClient(transport, {
        ...opts,
        onStatus: (s) => {
          conn.textContent = STATUS_TEXT[s];
          conn.className = `conn conn-${s}`;
          if (s === 'unauthorized') setBanner(unauthorizedText, 'warning', 'connection');
          else if (s === 'unreachable') setBanner(unreachableText, 'warning', 'connection');
          else if (s === 'live') setBanner(null, 'warning', 'connection');
          opts.onStatus?.(s);
        },
      });
      client.start();
      return client;
    },
    showError(e) {
      if (e === null) return setBanner(null, 'error', 'page');
      if (e instanceof AgentError && (e.status === 401 || e.status === 403)) return setBanner(unauthorizedText, 'warning', 'connection');
      setBanner(errorText(e), 'error', 'page');
    },
  };
}

/** One line for an error: the agent's message and its fix, or the exception's message. */
export function errorText(e: unknown): string {
  if (e instanceof AgentError) return e.message;
  const body = e as ApiError | undefined;
  if (body && typeof body.error === 'string') return body.error + (body.fix ? ` (${body.fix})` : '');
  return e instanceof Error ? e.message : String(e);
}
