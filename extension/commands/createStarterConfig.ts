import * as vscode from 'vscode';
import { CONFIG_FILE_NAMES, Commands } from '../constants';
import { starterConfig, type ProjectFacts } from '../starter';
import type { CommandDeps } from './deps';
import { folderHint, reportErrors, type CommandArg } from './resolve';

async function exists(uri: vscode.Uri): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(uri);
    return true;
  } catch {
    return false;
  }
}

async function projectFacts(folder: vscode.WorkspaceFolder): Promise<ProjectFacts> {
  const entries = await vscode.workspace.fs.readDirectory(folder.uri).then(
    (e) => e,
    () => [] as [string, vscode.FileType][],
  );
  const files = new Set(entries.map(([name]) => name));
  const facts: ProjectFacts = { name: folder.name, files };
  if (files.has('package.json')) {
    try {
      const pkg = JSON.parse(Buffer.from(await vscode.workspace.fs.readFile(vscode.Uri.joinPath(folder.uri, 'package.json'))).toString('utf8')) as { scripts?: Record<string, string> };
      facts.npmScripts = pkg.scripts ?? {};
    } catch {
      facts.npmScripts = {};
    }
    facts.lockfile = files.has('package-lock.json') ? 'npm' : files.has('yarn.lock') ? 'yarn' : files.has('pnpm-lock.yaml') ? 'pnpm' : undefined;
  }
  return facts;
}

/** Writes a starter conveyor.yml that fits the folder's project (npm test for a package.json) and opens it. */
export function registerCreateStarterConfig(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.createStarterConfig, async (arg?: CommandArg) => {
      const folders = vscode.workspace.workspaceFolders ?? [];
      if (folders.length === 0) {
        void vscode.window.showInformationMessage('Conveyor: open a folder first; conveyor.yml lives at its root.');
        return undefined;
      }
      const hint = folderHint(arg);
      let folder = hint ? folders.find((f) => f.uri.fsPath === (hint instanceof vscode.Uri ? hint.fsPath : hint) || f.name === hint) : undefined;
      if (!folder) {
        const without: vscode.WorkspaceFolder[] = [];
        for (const f of folders) {
          let has = false;
          for (const name of CONFIG_FILE_NAMES) has ||= await exists(vscode.Uri.joinPath(f.uri, name));
          if (!has) without.push(f);
        }
        const choices = without.length ? without : folders;
        folder =
          choices.length === 1
            ? choices[0]
            : (await vscode.window.showQuickPick(
                choices.map((f) => ({ label: f.name, description: f.uri.fsPath, folder: f })),
                { placeHolder: 'Create conveyor.yml in which folder?' },
              ))?.folder;
      }
      if (!folder) return undefined;
      const target = folder;
      return reportErrors(deps.log, 'Create Starter conveyor.yml', async () => {
        for (const name of CONFIG_FILE_NAMES) {
          const uri = vscode.Uri.joinPath(target.uri, name);
          if (await exists(uri)) {
            await vscode.window.showTextDocument(uri);
            void vscode.window.showInformationMessage(`Conveyor: ${target.name} already has ${name}.`);
            return uri;
          }
        }
        const uri = vscode.Uri.joinPath(target.uri, CONFIG_FILE_NAMES[0]);
        await vscode.workspace.fs.writeFile(uri, Buffer.from(starterConfig(await projectFacts(target)), 'utf8'));
        await vscode.window.showTextDocument(uri);
        return uri;
      });
    }),
  );
}
