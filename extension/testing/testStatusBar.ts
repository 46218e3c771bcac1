import * as vscode from 'vscode';
import type { RunSummary, StageTestResults } from '../../agent/protocol';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';

/** The counts of one run's tests (the latest attempt of each stage). */
export interface RunCounts {
  runId: number;
  trigger: RunSummary['trigger'];
  passed: number;
  failed: number;
  skipped: number;
}

interface Tally {
  run: RunSummary;
  /** Per stage: its latest attempt's results. */
  stages: Map<string, StageTestResults>;
}

/**
 * A status bar item beside Conveyor's own: `$(beaker) 12 ✓ 1 ✗`, the tests of the latest save
 * run of the active editor's folder (before any save run: of the latest run with results).
 * A click opens the Testing view.
 */
export class TestStatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  private readonly latestSave = new Map<FolderSession, Tally>();
  private readonly latestAny = new Map<FolderSession, Tally>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly sessions: SessionManager) {
    this.item = vscode.window.createStatusBarItem('conveyor.tests', vscode.StatusBarAlignment.Left, 39);
    this.item.name = 'Conveyor Tests';
    this.item.command = { title: 'Show Testing View', command: 'workbench.view.testing.focus' };
    this.disposables.push(
      this.item,
      vscode.window.onDidChangeActiveTextEditor(() => this.update()),
      sessions.onDidChangeSessions(() => {
        const live = new Set(sessions.list());
        for (const map of [this.latestSave, this.latestAny]) for (const s of [...map.keys()]) if (!live.has(s)) map.delete(s);
        this.update();
      }),
    );
  }

  /** Counts a stage attempt's results for its run. */
  record(session: FolderSession, run: RunSummary, group: StageTestResults): void {
    for (const map of run.trigger === 'save' ? [this.latestSave, this.latestAny] : [this.latestAny]) {
      let tally = map.get(session);
      if (tally && tally.run.id > run.id) continue;
      if (!tally || tally.run.id !== run.id) {
        tally = { run, stages: new Map() };
        map.set(session, tally);
      }
      const before = tally.stages.get(group.stage);
      if (!before || before.attempt <= group.attempt) tally.stages.set(group.stage, group);
    }
    this.update();
  }

  /** The counts the item shows for a folder. */
  counts(session: FolderSession): RunCounts | undefined {
    const tally = this.latestSave.get(session) ?? this.latestAny.get(session);
    if (!tally) return undefined;
    const all = [...tally.stages.values()].flatMap((g) => g.results);
    return {
      runId: tally.run.id,
      trigger: tally.run.trigger,
      passed: all.filter((r) => r.status === 'passed').length,
      failed: all.filter((r) => r.status === 'failed').length,
      skipped: all.filter((r) => r.status === 'skipped').length,
    };
  }

  update(): void {
    const editor = vscode.window.activeTextEditor;
    const session = (editor && this.sessions.forUri(editor.document.uri)) || this.sessions.list()[0];
    const c = session && this.counts(session);
    if (!session || !c) {
      this.item.hide();
      return;
    }
    this.item.text = `$(beaker) ${c.passed} ✓ ${c.failed} ✗`;
    const where = this.sessions.multiRoot ? ` (${session.folder.name})` : '';
    this.item.tooltip = `Conveyor${where}: tests of run #${c.runId} (${c.trigger}): ${c.passed} passed, ${c.failed} failed${
      c.skipped ? `, ${c.skipped} skipped` : ''
    }\nClick to open the Testing view.`;
    this.item.show();
  }

  dispose(): void {
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}
