import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Diagnostic as ConveyorDiagnostic, Range as ConveyorRange } from '../../agent/protocol';
import { CONFIG_FILE_NAMES } from '../constants';
import type { SessionManager } from '../session/sessionManager';
import { errorMessage } from '../util/async';

const DEBOUNCE_MS = 300;

async function exists(uri: vscode.Uri): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(uri);
    return true;
  } catch {
    return false;
  }
}

export function isConfigDocument(doc: vscode.TextDocument): boolean {
  return doc.uri.scheme === 'file' && (CONFIG_FILE_NAMES as readonly string[]).includes(path.basename(doc.uri.fsPath));
}

/** The protocol's 1-based line and column to VS Code's 0-based Range. */
export function toRange(r: ConveyorRange): vscode.Range {
  const start = new vscode.Position(Math.max(0, r.start.line - 1), Math.max(0, r.start.column - 1));
  const end = new vscode.Position(Math.max(0, r.end.line - 1), Math.max(0, r.end.column - 1));
  return new vscode.Range(start, end.isBefore(start) ? start : end);
}

/** One protocol diagnostic as the editor shows it; the file of `doc` stands for the config file it names. */
export function toDiagnostic(d: ConveyorDiagnostic, doc: vscode.Uri): vscode.Diagnostic {
  const message = d.fix ? `${d.message} (fix: ${d.fix})` : d.message;
  const out = new vscode.Diagnostic(toRange(d.range), message, d.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning);
  out.source = 'conveyor';
  out.code = d.code;
  if (d.related?.length) {
    out.relatedInformation = d.related.map(
      (r) => new vscode.DiagnosticRelatedInformation(new vscode.Location(sameConfig(r.file, d.file) ? doc : vscode.Uri.file(r.file), toRange(r.range)), r.message),
    );
  }
  return out;
}

function sameConfig(file: string, primary: string): boolean {
  return file === primary || (path.dirname(file) === path.dirname(primary) && (CONFIG_FILE_NAMES as readonly string[]).includes(path.basename(file)));
}

/**
 * Problems in conveyor.yml (or conveyor.yaml) as the user types: the document's text, debounced,
 * goes to the agent's analyzer (POST /api/validate) and comes back as diagnostics. They are
 * cleared when the file is fixed, closed or deleted.
 */
export class ConfigDiagnostics implements vscode.Disposable {
  readonly collection = vscode.languages.createDiagnosticCollection('conveyor');
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Document version each request was made for: a late answer for an older version is dropped. */
  private readonly requested = new Map<string, number>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly _onDidValidate = new vscode.EventEmitter<vscode.Uri>();
  /** Fires after a document's diagnostics were set from an answer (tests wait on it). */
  readonly onDidValidate = this._onDidValidate.event;

  constructor(
    private readonly sessions: SessionManager,
    private readonly log: vscode.LogOutputChannel,
  ) {
    // Deletions of anything: a folder removed with its conveyor.yml is reported as the folder alone.
    const watcher = vscode.workspace.createFileSystemWatcher('**', true, true, false);
    this.disposables.push(
      this.collection,
      this._onDidValidate,
      watcher,
      watcher.onDidDelete((gone) => {
        const under: vscode.Uri[] = [];
        this.collection.forEach((uri) => {
          if (uri.fsPath === gone.fsPath || uri.fsPath.startsWith(gone.fsPath + path.sep)) under.push(uri);
        });
        for (const uri of under) this.clear(uri);
      }),
      vscode.workspace.onDidOpenTextDocument((doc) => this.schedule(doc, 0)),
      vscode.workspace.onDidChangeTextDocument((e) => this.schedule(e.document, DEBOUNCE_MS)),
      // Shown again after its tab closed (the document stayed open): checked again.
      vscode.window.onDidChangeVisibleTextEditors((editors) => {
        for (const e of editors) if (!this.requested.has(e.document.uri.toString())) this.schedule(e.document, 0);
      }),
      vscode.workspace.onDidCloseTextDocument((doc) => this.clear(doc.uri)),
      // A closed editor tab: VS Code may keep the document a while longer, the problems go now.
      vscode.window.tabGroups.onDidChangeTabs((e) => {
        for (const tab of e.closed) {
          if (!(tab.input instanceof vscode.TabInputText) || !CONFIG_FILE_NAMES.some((n) => (tab.input as vscode.TabInputText).uri.path.endsWith(`/${n}`))) continue;
          const uri = tab.input.uri;
          const stillOpen = vscode.window.tabGroups.all.some((g) => g.tabs.some((t) => t.input instanceof vscode.TabInputText && t.input.uri.toString() === uri.toString()));
          if (!stillOpen) this.clear(uri);
        }
      }),
      vscode.workspace.onDidDeleteFiles((e) => e.files.forEach((uri) => this.clear(uri))),
      vscode.workspace.onDidRenameFiles((e) => e.files.forEach((f) => this.clear(f.oldUri))),
      // A folder whose agent (re)connects: check its open config documents.
      sessions.onDidChangeState((s) => {
        if (s.state !== 'connected') return;
        for (const doc of vscode.workspace.textDocuments) if (this.sessions.forUri(doc.uri) === s) this.schedule(doc, 0);
      }),
    );
    for (const doc of vscode.workspace.textDocuments) this.schedule(doc, 0);
  }

  private schedule(doc: vscode.TextDocument, delay: number): void {
    if (!isConfigDocument(doc)) return;
    const key = doc.uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        this.validate(doc).catch((e: unknown) => this.log.warn(`validating ${doc.uri.fsPath}: ${errorMessage(e)}`));
      }, delay),
    );
  }

  /** Validates the document's current text now; resolves with its diagnostics (undefined without an agent). */
  async validate(doc: vscode.TextDocument): Promise<vscode.Diagnostic[] | undefined> {
    if (doc.isClosed) return undefined;
    const session = this.sessions.forUri(doc.uri);
    const http = session?.http;
    if (!http) return undefined;
    const key = doc.uri.toString();
    const version = doc.version;
    this.requested.set(key, version);
    const found = await http.validate(doc.getText());
    // Dropped: a newer text was sent meanwhile, or the document went away.
    if (this.requested.get(key) !== version || doc.isClosed) return undefined;
    if (!doc.isDirty && !(await exists(doc.uri))) {
      // The file was deleted under a clean editor: nothing to report on.
      this.clear(doc.uri);
      return undefined;
    }
    const diagnostics = found.map((d) => toDiagnostic(d, doc.uri));
    this.collection.set(doc.uri, diagnostics);
    this._onDidValidate.fire(doc.uri);
    return diagnostics;
  }

  private clear(uri: vscode.Uri): void {
    const key = uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    this.requested.delete(key);
    this.collection.delete(uri);
  }

  dispose(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}
