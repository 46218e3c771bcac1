import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TestResult, Trigger } from '../../agent/protocol';
import { findSuite, findTest, scanDeclarations } from './declarations';

export type ItemKind = 'file' | 'suite' | 'test';

/** The latest result of a test, whichever run gave it. */
export interface LatestResult {
  runId: number;
  trigger: Trigger;
  stage: string;
  attempt: number;
  result: TestResult;
}

/** What Conveyor knows of a TestItem; kept in a WeakMap, so a deleted item takes it with it. */
export interface ItemData {
  kind: ItemKind;
  /** The workspace folder's URI (string): which agent runs the item. */
  folder: string;
  /** The test file; undefined for tests the report placed in no file (grouped by stage). */
  file: vscode.Uri | undefined;
  suite: string;
  name: string;
  latest?: LatestResult;
  /** The messages reported with the latest failure (for the editor's tests). */
  messages?: vscode.TestMessage[];
}

/**
 * The controller's items: file → suite → test, built from results. IDs are the file's URI,
 * then `#suite`, then `#name` (a test outside any suite: `uri##name`), so a test keeps its ID
 * from run to run and across reloads. Tests a report placed in no file go under one item per
 * folder and stage.
 *
 * Ranges come from the test file's text (see declarations.ts); where that finds nothing, from
 * the result's location when it is in the test's own file.
 */
export class TestTree {
  private readonly data = new WeakMap<vscode.TestItem, ItemData>();

  constructor(private readonly controller: vscode.TestController) {}

  dataOf(item: vscode.TestItem): ItemData | undefined {
    return this.data.get(item);
  }

  /** The file item of `uri`, created when missing. */
  fileItem(folder: vscode.WorkspaceFolder, uri: vscode.Uri): vscode.TestItem {
    const id = uri.toString();
    let item = this.controller.items.get(id);
    if (!item) {
      item = this.controller.createTestItem(id, vscode.workspace.asRelativePath(uri, (vscode.workspace.workspaceFolders?.length ?? 0) > 1), uri);
      this.data.set(item, { kind: 'file', folder: folder.uri.toString(), file: uri, suite: '', name: '' });
      this.controller.items.add(item);
    }
    return item;
  }

  /** The item of tests a report placed in no file, for one folder and stage. */
  private looseItem(folder: vscode.WorkspaceFolder, stage: string): vscode.TestItem {
    const id = `${folder.uri.toString()}#stage:${stage}`;
    let item = this.controller.items.get(id);
    if (!item) {
      item = this.controller.createTestItem(id, `${stage} (no source file)`);
      this.data.set(item, { kind: 'file', folder: folder.uri.toString(), file: undefined, suite: '', name: '' });
      this.controller.items.add(item);
    }
    return item;
  }

  /** The item of one test, with its file and suite items, created when missing. */
  testItem(folder: vscode.WorkspaceFolder, file: vscode.Uri | undefined, stage: string, suite: string, name: string): vscode.TestItem {
    const parent = file ? this.fileItem(folder, file) : this.looseItem(folder, stage);
    let owner = parent;
    if (suite) {
      const suiteId = `${parent.id}#${suite}`;
      let suiteItem = parent.children.get(suiteId);
      if (!suiteItem) {
        suiteItem = this.controller.createTestItem(suiteId, suite, file);
        this.data.set(suiteItem, { kind: 'suite', folder: folder.uri.toString(), file, suite, name: '' });
        parent.children.add(suiteItem);
      }
      owner = suiteItem;
    }
    const id = `${parent.id}#${suite}#${name}`;
    let item = owner.children.get(id);
    if (!item) {
      item = this.controller.createTestItem(id, name || '(unnamed test)', file);
      this.data.set(item, { kind: 'test', folder: folder.uri.toString(), file, suite, name });
      owner.children.add(item);
    }
    return item;
  }

  /** Every item at the top (file items). */
  roots(): vscode.TestItem[] {
    const out: vscode.TestItem[] = [];
    this.controller.items.forEach((i) => out.push(i));
    return out;
  }

  /** The test items (leaves) under `items` (all when undefined), minus those under `exclude`. */
  leaves(items?: readonly vscode.TestItem[], exclude?: readonly vscode.TestItem[]): vscode.TestItem[] {
    const skip = new Set(exclude ?? []);
    const out: vscode.TestItem[] = [];
    const visit = (item: vscode.TestItem) => {
      if (skip.has(item)) return;
      if (this.data.get(item)?.kind === 'test') out.push(item);
      item.children.forEach(visit);
    };
    for (const item of items ?? this.roots()) visit(item);
    return out;
  }

  /** The test item at `id` (file URI, suite, name), if there is one. */
  find(id: string): vscode.TestItem | undefined {
    let found: vscode.TestItem | undefined;
    const visit = (item: vscode.TestItem) => {
      if (found) return;
      if (item.id === id) found = item;
      else if (id.startsWith(item.id)) item.children.forEach(visit);
    };
    this.controller.items.forEach(visit);
    return found;
  }

  /** The file a known test (suite and name) of `folder` lives in, when exactly one matches. */
  knownFileOf(folder: string, suite: string, name: string): string | undefined {
    const files = new Set<string>();
    for (const t of this.leaves()) {
      const d = this.data.get(t);
      if (d && d.folder === folder && d.suite === suite && d.name === name && d.file) files.add(d.file.fsPath);
    }
    return files.size === 1 ? [...files][0] : undefined;
  }

  /** True when there is a file item for `file` (absolute). */
  hasFile(file: string): boolean {
    return !!this.controller.items.get(vscode.Uri.file(file).toString());
  }

  /**
   * Removes the items of files at or under `uri` (a deleted file or folder). Returns the test
   * items that went with them.
   */
  removeUnder(uri: vscode.Uri): vscode.TestItem[] {
    const gone: vscode.TestItem[] = [];
    for (const root of this.roots()) {
      const file = this.data.get(root)?.file;
      if (!file || !(file.fsPath === uri.fsPath || file.fsPath.startsWith(uri.fsPath + path.sep))) continue;
      gone.push(...this.leaves([root]));
      this.controller.items.delete(root.id);
    }
    return gone;
  }

  /** Removes the items of the folders `gone` names (folder URI strings); returns their tests. */
  removeFolders(gone: (folder: string) => boolean): vscode.TestItem[] {
    const removed: vscode.TestItem[] = [];
    for (const root of this.roots()) {
      const folder = this.data.get(root)?.folder;
      if (folder === undefined || !gone(folder)) continue;
      removed.push(...this.leaves([root]));
      this.controller.items.delete(root.id);
    }
    return removed;
  }

  /** Removes the tests of `file` that `keep` does not hold (renamed or deleted tests); returns them. */
  prune(file: vscode.TestItem, keep: ReadonlySet<vscode.TestItem>): vscode.TestItem[] {
    const gone: vscode.TestItem[] = [];
    const visit = (parent: vscode.TestItem) => {
      const children: vscode.TestItem[] = [];
      parent.children.forEach((c) => children.push(c));
      for (const c of children) {
        if (this.data.get(c)?.kind === 'test') {
          if (!keep.has(c)) {
            gone.push(c);
            parent.children.delete(c.id);
          }
        } else {
          visit(c);
          if (c.children.size === 0) parent.children.delete(c.id);
        }
      }
    };
    visit(file);
    return gone;
  }

  /** Places the items of the file item `file` on their declarations in `text`. */
  applyDeclarations(file: vscode.TestItem, text: string): void {
    const decls = scanDeclarations(text);
    const lines = text.split(/\r?\n/);
    const rangeOf = (line: number, column: number) => new vscode.Range(line, column, line, Math.max(column, lines[line]?.length ?? column));
    const visit = (item: vscode.TestItem) => {
      const d = this.data.get(item);
      if (!d) return;
      if (d.kind === 'suite') {
        const decl = findSuite(decls, d.suite);
        if (decl) item.range = rangeOf(decl.line, decl.column);
      } else if (d.kind === 'test') {
        const decl = findTest(decls, d.suite, d.name);
        const loc = d.latest?.result.location;
        if (decl) item.range = rangeOf(decl.line, decl.column);
        // A file-only location reads as line 1, column 1: no place of the test's own.
        else if (loc && d.file && loc.file === d.file.fsPath && (loc.line > 1 || loc.column > 1)) item.range = rangeOf(loc.line - 1, Math.max(0, loc.column - 1));
      }
      item.children.forEach(visit);
    };
    file.children.forEach(visit);
  }
}
