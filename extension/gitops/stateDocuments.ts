import * as vscode from 'vscode';
import type { StateView } from '../../agent/protocol';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { errorMessage } from '../util/async';
import { shortSha } from '../util/time';

/** The scheme of the read-only documents of an environment's desired and live state. */
export const STATE_SCHEME = 'conveyor-state';

/** Which side of an environment's state a document shows. */
export type StateSide = 'desired' | 'live';

/** The two documents of one answer of GET /api/environments/:name/state. */
export interface StateDocumentPair {
  view: StateView;
  /** The state file at the revision the agent compared, titled with its branch and revision. */
  desired: vscode.Uri;
  /** The live state in the state file's shape; the same document for every revision. */
  live: vscode.Uri;
}

interface StateRef {
  folder: string;
  environment: string;
  side: StateSide;
  revision: string;
}

/** A file name cannot hold the slashes of a branch name: the title writes them as division slashes. */
function titlePart(text: string): string {
  return text.replace(/\//g, '\u2215');
}

function stateUri(session: FolderSession, environment: string, side: StateSide, view: StateView): vscode.Uri {
  const revision = side === 'desired' ? (view.sync.revision ?? '') : '';
  const where = side === 'live' ? 'live' : [titlePart(view.branch), shortSha(revision)].filter(Boolean).join(' @ ');
  const query = new URLSearchParams({ folder: session.folder.uri.fsPath, environment, side, revision });
  return vscode.Uri.from({ scheme: STATE_SCHEME, path: `/${titlePart(environment)} (${where}).yml`, query: query.toString() });
}

function parseStateUri(uri: vscode.Uri): StateRef | undefined {
  const q = new URLSearchParams(uri.query);
  const folder = q.get('folder');
  const environment = q.get('environment');
  const side = q.get('side');
  if (!folder || !environment || (side !== 'desired' && side !== 'live')) return undefined;
  return { folder, environment, side, revision: q.get('revision') ?? '' };
}

/** YAML comment lines: what a state document says when it has no state to show. */
function comment(text: string): string {
  return `${text
    .split('\n')
    .map((l) => `# ${l}`)
    .join('\n')}\n`;
}

function desiredText(environment: string, view: StateView): string {
  if (view.desired !== null) return view.desired;
  const where = `${view.sync.file} on ${view.branch}${view.repo ? ` of ${view.repo}` : ''}`;
  return comment(`There is no ${where}: nothing is desired for ${environment} yet.`);
}

/**
 * The read-only virtual documents (`conveyor-state:` URIs) of environments' desired state in
 * git and live state, filled from GET /api/environments/:name/state. `load` asks the agent
 * again and updates the documents already open; a document the editor restores before anyone
 * asked is loaded on demand. Texts are kept while their documents are open.
 */
export class StateDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly texts = new Map<string, string>();
  private readonly _onDidChange = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this._onDidChange.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly sessions: SessionManager) {
    this.disposables.push(
      this._onDidChange,
      vscode.workspace.onDidCloseTextDocument((doc) => {
        if (doc.uri.scheme === STATE_SCHEME) this.texts.delete(doc.uri.toString());
      }),
    );
  }

  /** Asks the agent for an environment's state now; the documents show its answer. Throws when it cannot. */
  async load(session: FolderSession, environment: string): Promise<StateDocumentPair> {
    const http = await session.requireApi();
    const view = await http.environmentState(environment);
    const desired = stateUri(session, environment, 'desired', view);
    const live = stateUri(session, environment, 'live', view);
    this.set(desired, desiredText(environment, view));
    this.set(live, view.live);
    return { view, desired, live };
  }

  private set(uri: vscode.Uri, text: string): void {
    const key = uri.toString();
    if (this.texts.get(key) === text) return;
    this.texts.set(key, text);
    this._onDidChange.fire(uri);
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const known = this.texts.get(uri.toString());
    if (known !== undefined) return known;
    const ref = parseStateUri(uri);
    if (!ref) return comment(`${uri.toString(true)} names no environment's state.`);
    const session = this.sessions.forFolder(ref.folder);
    if (!session) return comment(`${ref.folder} has no conveyor.yml open in this window.`);
    try {
      const pair = await this.load(session, ref.environment);
      const text = this.texts.get(uri.toString());
      if (text !== undefined) return text;
      // The desired state moved on since this document was opened.
      return comment(`The desired state of ${ref.environment} is at ${shortSha(pair.view.sync.revision) ?? 'no revision'} now, not ${shortSha(ref.revision) ?? 'none'}: run "Conveyor: Open Desired State" again.`);
    } catch (e) {
      return comment(`The state of ${ref.environment} could not be read: ${errorMessage(e)}`);
    }
  }

  dispose(): void {
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}
