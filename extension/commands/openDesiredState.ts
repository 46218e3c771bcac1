import * as vscode from 'vscode';
import type { StateView } from '../../agent/protocol';
import { GitOpsCommands } from '../deploys/commandIds';
import { deployArgOf, type DeployCommandArg } from '../deploys/deployArgs';
import { resolveGitOpsEnvironment } from '../gitops/reconcileActions';
import { DriftItemNode } from '../views/environments/driftNode';
import type { CommandDeps } from './deps';
import { reportErrors, requireTrust } from './resolve';

/** What Open Desired State opened: the document and the line (1-based) it selected. */
export interface OpenedDesiredState {
  uri: vscode.Uri;
  line: number;
  view: StateView;
}

/**
 * The line of a drift item's key in the desired state file, from the lines the agent gave:
 * `env.NAME (abc)` is env.NAME's line (or env's), the image is the artifact's digest, an
 * instance is the replicas.
 */
function lineOfPath(lines: Record<string, number>, path: string): number | undefined {
  const key = path.replace(/\s*\(.*\)$/, '');
  const keys = key === 'image' || key === 'artifact' ? ['artifact.digest', 'artifact'] : key.startsWith('instance ') ? ['replicas'] : [key, key.split('.')[0]];
  return keys.map((k) => lines[k]).find((l) => l !== undefined);
}

/**
 * Opens an environment's desired state file, as of the revision the agent compared, in a
 * read-only YAML document titled with its branch and revision. From a drift item it selects the
 * line of that item's key; else the line of the file's error, if it has one; else the top.
 */
export function registerOpenDesiredState(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(GitOpsCommands.openDesiredState, async (arg?: DeployCommandArg): Promise<OpenedDesiredState | undefined> => {
      if (!requireTrust('open the desired state')) return undefined;
      return reportErrors(deps.log, 'Open Desired State', async () => {
        const target = await resolveGitOpsEnvironment(deps, arg, 'Open the desired state of which environment?');
        if (!target) return undefined;
        const { view, desired } = await deps.states.load(target.session, target.status.name);
        let doc = await vscode.workspace.openTextDocument(desired);
        if (doc.languageId !== 'yaml') doc = await vscode.languages.setTextDocumentLanguage(doc, 'yaml');
        const path = arg instanceof DriftItemNode ? arg.item.path : deployArgOf(arg).path;
        const wanted = (path !== undefined ? lineOfPath(view.lines, path) : undefined) ?? view.sync.error?.line ?? 1;
        const line = wanted >= 1 && wanted <= doc.lineCount ? wanted : 1;
        const text = doc.lineAt(line - 1);
        const selection = new vscode.Range(line - 1, text.firstNonWhitespaceCharacterIndex, line - 1, text.range.end.character);
        const editor = await vscode.window.showTextDocument(doc, { selection, preview: true });
        editor.revealRange(selection, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
        return { uri: desired, line, view };
      });
    }),
  );
}
