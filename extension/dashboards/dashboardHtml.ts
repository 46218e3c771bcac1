import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { pageShell, type DashboardPage } from '../../webview/shared/shell';
import type { AgentEndpoint } from '../agent/agentApi';

/**
 * A dashboard page's HTML for a webview: its script and style sheet from dist/webview (through
 * asWebviewUri), a fresh nonce, a CSP that lets the page reach only the agent, and the agent's
 * address, token and the page's parameters on the root element.
 */
export function dashboardHtml(webview: vscode.Webview, root: vscode.Uri, page: DashboardPage, endpoint: AgentEndpoint, params: Record<string, string>): string {
  const nonce = randomBytes(18).toString('base64');
  const agent = `127.0.0.1:${endpoint.port}`;
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `img-src ${webview.cspSource} data:`,
    `font-src ${webview.cspSource}`,
    `connect-src http://${agent} ws://${agent}`,
  ].join('; ');
  return pageShell({
    page,
    host: 'vscode',
    nonce,
    csp,
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(root, `${page}.js`)).toString(),
    styleUri: webview.asWebviewUri(vscode.Uri.joinPath(root, `${page}.css`)).toString(),
    data: { base: `http://${agent}`, token: endpoint.token, params: JSON.stringify(params) },
  });
}
