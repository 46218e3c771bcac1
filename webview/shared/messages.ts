/**
 * Messages between a dashboard page in an editor webview and the extension that hosts it.
 * Types only.
 */
import type { DashboardPage } from './shell';

/** Page to extension. */
export type PageMessage =
  /** The page has rendered its data; `summary` is one line of what it shows. */
  | { type: 'rendered'; page: DashboardPage; summary: string }
  /** Open a source file at a line (a failed test's location). */
  | { type: 'openLocation'; file: string; line: number; column: number }
  /** Open another dashboard page (a run from the timeline, the timeline of an environment). */
  | { type: 'open'; page: DashboardPage; params: Record<string, string> }
  /** The panel's title (the run it shows). */
  | { type: 'title'; title: string };

/** Extension to page. */
export type HostMessage =
  /** The agent restarted on the same port with a new token. */
  | { type: 'connection'; base: string; token: string }
  /** The agent is gone; the page waits for a `connection`. */
  | { type: 'offline'; reason: string };
