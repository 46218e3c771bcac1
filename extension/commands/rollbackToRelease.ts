import * as vscode from 'vscode';
import { DeployCommands } from '../deploys/commandIds';
import type { ReleaseNode } from '../views/environments/releaseNode';
import type { CommandDeps } from './deps';
import { rollback } from './rollbackEnvironment';

/** The release node's "Rollback to This Release": Rollback… without the picks (tree only). */
export function registerRollbackToRelease(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(vscode.commands.registerCommand(DeployCommands.rollbackToRelease, (node?: ReleaseNode) => rollback(deps, node)));
}
