import * as path from 'node:path';
import * as vscode from 'vscode';

/**
 * Failing tests as problems ("conveyor-tests"), one per test at its failing line. A test's
 * diagnostic is replaced by its next failure and removed when it passes or is skipped, when its
 * test is removed, and when the file it points at (or the test's file) is deleted.
 */
export class TestDiagnostics implements vscode.Disposable {
  readonly collection = vscode.languages.createDiagnosticCollection('conveyor-tests');
  /** Test item ID → where its failure is shown, and the test's own file. */
  private readonly byTest = new Map<string, { uri: vscode.Uri; testFile: string | undefined; diagnostic: vscode.Diagnostic }>();

  set(testId: string, testFile: vscode.Uri | undefined, uri: vscode.Uri, diagnostic: vscode.Diagnostic): void {
    const before = this.byTest.get(testId);
    this.byTest.set(testId, { uri, testFile: testFile?.fsPath, diagnostic });
    if (before && before.uri.toString() !== uri.toString()) this.flush(before.uri);
    this.flush(uri);
  }

  delete(testId: string): void {
    const before = this.byTest.get(testId);
    if (!before) return;
    this.byTest.delete(testId);
    this.flush(before.uri);
  }

  /** Drops the diagnostics shown in, or of tests in, a deleted file or folder. */
  deleteUnder(gone: vscode.Uri): void {
    const under = (p: string | undefined) => p !== undefined && (p === gone.fsPath || p.startsWith(gone.fsPath + path.sep));
    const touched = new Map<string, vscode.Uri>();
    for (const [id, entry] of this.byTest) {
      if (!under(entry.uri.fsPath) && !under(entry.testFile)) continue;
      this.byTest.delete(id);
      touched.set(entry.uri.toString(), entry.uri);
    }
    for (const uri of touched.values()) this.flush(uri);
  }

  /** The diagnostic of a test, if it has one. */
  get(testId: string): vscode.Diagnostic | undefined {
    return this.byTest.get(testId)?.diagnostic;
  }

  private flush(uri: vscode.Uri): void {
    const key = uri.toString();
    const list = [...this.byTest.values()].filter((e) => e.uri.toString() === key).map((e) => e.diagnostic);
    if (list.length) this.collection.set(uri, list);
    else this.collection.delete(uri);
  }

  dispose(): void {
    this.collection.dispose();
  }
}
