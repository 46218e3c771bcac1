/**
 * What a page does with the place it runs in: in a browser tab, links are links and a source
 * location is shown as path:line; in an editor webview, the extension opens pages and files
 * (the page posts it a message) and posts back a new connection when the agent restarts.
 */
import type { HostMessage, PageMessage } from './messages';
import type { DashboardPage, PageHost } from './shell';

interface VsCodeApi {
  postMessage(message: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

/** The page's host: its kind, the page's parameters, and the messages to and from the extension. */
export class Host {
  private readonly vscode: VsCodeApi | undefined;

  constructor(
    readonly kind: PageHost,
    private readonly params: URLSearchParams,
  ) {
    this.vscode = kind === 'vscode' && typeof acquireVsCodeApi === 'function' ? acquireVsCodeApi() : undefined;
  }

  /** The host the page's body names, and the page's parameters (the query, or data-params in a webview). */
  static fromDocument(root: HTMLElement): Host {
    const kind: PageHost = document.body.dataset.host === 'vscode' ? 'vscode' : 'browser';
    let params = new URLSearchParams(location.search);
    if (kind === 'vscode') {
      try {
        params = new URLSearchParams(JSON.parse(root.dataset.params ?? '{}') as Record<string, string>);
      } catch {
        params = new URLSearchParams();
      }
    }
    return new Host(kind, params);
  }

  param(name: string): string | null {
    return this.params.get(name);
  }

  post(message: PageMessage): void {
    this.vscode?.postMessage(message);
  }

  /** Messages from the extension (a webview only). */
  onMessage(listener: (m: HostMessage) => void): void {
    if (!this.vscode) return;
    window.addEventListener('message', (e: MessageEvent) => {
      const m = e.data as HostMessage | undefined;
      if (m && typeof m === 'object' && typeof m.type === 'string') listener(m);
    });
  }

  /** The address of a page with parameters, for a browser link. */
  href(page: DashboardPage, params: Record<string, string> = {}): string {
    const q = new URLSearchParams(params).toString();
    return `${page}.html${q ? `?${q}` : ''}`;
  }

  /** Goes to another page: a link in a browser, a panel the extension opens in the editor. */
  open(page: DashboardPage, params: Record<string, string> = {}): void {
    if (this.kind === 'vscode') this.post({ type: 'open', page, params });
    else location.href = this.href(page, params);
  }
}
