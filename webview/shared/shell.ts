/**
 * The HTML of a dashboard page, shared by the agent (served under /dashboard/) and the editor
 * (a webview panel): a root element that the page's script fills, and nothing else inline.
 * Pure: no DOM, no Node.
 */

/** The dashboard pages; each one is `<page>.js` and `<page>.css` in dist/webview/. */
export const DASHBOARD_PAGES = ['run', 'metrics', 'timeline'] as const;

/** A dashboard page's name. */
export type DashboardPage = (typeof DASHBOARD_PAGES)[number];

/** The page's title in a browser tab or an editor tab. */
export const PAGE_TITLES: Readonly<Record<DashboardPage, string>> = {
  run: 'Run',
  metrics: 'Metrics',
  timeline: 'Timeline',
};

/** Where a page runs: a browser tab served by the agent, or an editor webview. */
export type PageHost = 'browser' | 'vscode';

/** What a page's HTML is made of. */
export interface ShellOptions {
  page: DashboardPage;
  host: PageHost;
  /** The per-response nonce of the script and style tags. */
  nonce: string;
  /** The Content-Security-Policy, repeated in a meta tag (a webview has no response headers). */
  csp: string;
  scriptUri: string;
  styleUri: string;
  /** data-* attributes of the root element (without the data- prefix): the connection, the page's parameters. */
  data?: Record<string, string>;
}

/** True for a name a page can be served under. */
export function isDashboardPage(name: string): name is DashboardPage {
  return (DASHBOARD_PAGES as readonly string[]).includes(name);
}

/** The page's HTML: every value is escaped for its attribute. */
export function pageShell(o: ShellOptions): string {
  const data = Object.entries({ page: o.page, ...o.data })
    .filter(([key]) => /^[a-z][a-z0-9-]*$/.test(key))
    .map(([key, value]) => ` data-${key}="${escapeHtml(value)}"`)
    .join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(o.csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Conveyor · ${escapeHtml(PAGE_TITLES[o.page])}</title>
<link rel="stylesheet" href="${escapeHtml(o.styleUri)}" nonce="${escapeHtml(o.nonce)}">
<script defer src="${escapeHtml(o.scriptUri)}" nonce="${escapeHtml(o.nonce)}"></script>
</head>
<body data-host="${o.host}">
<div id="app"${data}></div>
</body>
</html>
`;
}

/** Text made safe for HTML content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
