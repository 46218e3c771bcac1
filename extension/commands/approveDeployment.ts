import * as vscode from 'vscode';
import { DeployCommands } from '../deploys/commandIds';
import { decideApproval } from '../deploys/decideApproval';
import type { DeployCommandArg } from '../deploys/deployArgs';
import type { CommandDeps } from './deps';

/** Approves a pending promotion (asking for an optional reason) and follows the deployment it lets through. */
export function registerApprove(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(vscode.commands.registerCommand(DeployCommands.approve, (arg?: DeployCommandArg) => decideApproval(deps, 'approve', arg)));
}
