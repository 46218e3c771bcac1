import { execFile } from 'node:child_process';
import * as vscode from 'vscode';

export const COMMIT_SCHEME = 'conveyor-commit';

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, maxBuffer: 32 * 1024 * 1024, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(stderr.trim() || err.message));
      else resolve(stdout);
    });
  });
}

/** `conveyor-commit:/<sha>.diff?<folder>`: `git show` of a commit as a read-only document. */
export function commitDocUri(folder: string, sha: string): vscode.Uri {
  return vscode.Uri.from({ scheme: COMMIT_SCHEME, path: `/${sha.slice(0, 12)}.diff`, query: new URLSearchParams({ folder, sha }).toString() });
}

/** Serves conveyor-commit: documents from `git show --stat --patch`. */
export class CommitDocumentProvider implements vscode.TextDocumentContentProvider {
  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const q = new URLSearchParams(uri.query);
    const folder = q.get('folder');
    const sha = q.get('sha');
    if (!folder || !sha || !/^[0-9a-f]{4,64}$/i.test(sha)) return 'not a commit';
    return git(folder, ['show', '--no-color', '--format=fuller', '--stat', '--patch', sha]);
  }
}

interface GitExtensionApi {
  toGitUri(uri: vscode.Uri, ref: string): vscode.Uri;
  getRepository(uri: vscode.Uri): unknown;
  openRepository?(root: vscode.Uri): Promise<unknown>;
}

async function gitApi(): Promise<GitExtensionApi | undefined> {
  const ext = vscode.extensions.getExtension<{ enabled: boolean; getAPI(v: 1): GitExtensionApi }>('vscode.git');
  if (!ext) return undefined;
  const exports = ext.isActive ? ext.exports : await ext.activate();
  return exports?.enabled ? exports.getAPI(1) : undefined;
}

/**
 * Opens a commit: its changes side by side in the multi-file diff editor (through the git
 * extension's `git:` documents), or, when that cannot be had, `git show` as a document.
 * Resolves with what it opened.
 */
export async function openCommit(folder: vscode.Uri, sha: string, title: string): Promise<'changes' | 'document'> {
  const cwd = folder.fsPath;
  const label = `${sha.slice(0, 7)} ${title}`;
  try {
    const api = await gitApi();
    if (api) {
      const repo = api.getRepository(folder) ?? (await api.openRepository?.(folder));
      if (repo) {
        const top = (await git(cwd, ['rev-parse', '--show-toplevel'])).trim();
        const parents = (await git(cwd, ['rev-list', '--parents', '-n', '1', sha])).trim().split(/\s+/).slice(1);
        const parent = parents[0];
        const diff = await git(cwd, ['diff-tree', '--no-commit-id', '-r', '-M', '--name-status', ...(parent ? [] : ['--root']), sha]);
        const resources: [vscode.Uri, vscode.Uri | undefined, vscode.Uri | undefined][] = [];
        for (const line of diff.split('\n')) {
          if (!line.trim()) continue;
          const [status, a, b] = line.split('\t');
          const oldUri = vscode.Uri.joinPath(vscode.Uri.file(top), a);
          const newUri = vscode.Uri.joinPath(vscode.Uri.file(top), b ?? a);
          if (status.startsWith('A')) resources.push([newUri, undefined, api.toGitUri(newUri, sha)]);
          else if (status.startsWith('D')) resources.push([oldUri, api.toGitUri(oldUri, parent ?? sha), undefined]);
          else resources.push([newUri, parent ? api.toGitUri(oldUri, parent) : undefined, api.toGitUri(newUri, sha)]);
        }
        if (resources.length > 0 && resources.length <= 500) {
          await vscode.commands.executeCommand('vscode.changes', label, resources);
          return 'changes';
        }
      }
    }
  } catch {
    // The document below shows the commit all the same.
  }
  const doc = await vscode.workspace.openTextDocument(commitDocUri(cwd, sha));
  await vscode.languages.setTextDocumentLanguage(doc, 'diff');
  await vscode.window.showTextDocument(doc, { preview: true });
  return 'document';
}
