import * as vscode from 'vscode';
import { CONFIG_FILE_NAMES, Commands } from '../constants';
import { isConfigDocument } from '../diagnostics/configDiagnostics';
import type { CommandDeps } from './deps';
import { pickSession, reportErrors, type CommandArg } from './resolve';

/** Checks conveyor.yml (the open one, else the folder's) with the agent's analyzer and says what it found. */
export function registerValidateConfig(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(Commands.validateConfig, async (arg?: CommandArg) => {
      const active = vscode.window.activeTextEditor?.document;
      const activeSession = active && isConfigDocument(active) ? deps.sessions.forUri(active.uri) : undefined;
      const session = arg === undefined && activeSession ? activeSession : await pickSession(deps.sessions, arg, 'Validate the conveyor.yml of which folder?');
      if (!session) return undefined;
      return reportErrors(deps.log, 'Validate Config', async () => {
        let doc = active && isConfigDocument(active) && deps.sessions.forUri(active.uri) === session ? active : undefined;
        if (!doc) {
          for (const name of CONFIG_FILE_NAMES) {
            const uri = vscode.Uri.joinPath(session.folder.uri, name);
            try {
              await vscode.workspace.fs.stat(uri);
              doc = await vscode.workspace.openTextDocument(uri);
              break;
            } catch {
              // try the other name
            }
          }
        }
        if (!doc) throw new Error(`there is no conveyor.yml in ${session.folder.name}`);
        await session.requireApi();
        const found = (await deps.diagnostics.validate(doc)) ?? [];
        const name = vscode.workspace.asRelativePath(doc.uri, deps.sessions.multiRoot);
        if (found.length === 0) {
          void vscode.window.showInformationMessage(`Conveyor: ${name} is valid.`);
        } else {
          const errors = found.filter((d) => d.severity === vscode.DiagnosticSeverity.Error).length;
          void vscode.window
            .showWarningMessage(`Conveyor: ${name} has ${found.length} problem${found.length === 1 ? '' : 's'} (${errors} error${errors === 1 ? '' : 's'}).`, 'Show Problems', 'Open File')
            .then((choice) => {
              if (choice === 'Show Problems') return vscode.commands.executeCommand('workbench.actions.view.problems');
              if (choice === 'Open File') return vscode.window.showTextDocument(doc!, { selection: found[0].range });
              return undefined;
            })
            .then(undefined, () => undefined);
        }
        return found;
      });
    }),
  );
}
