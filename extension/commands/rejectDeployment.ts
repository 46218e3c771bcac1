import * as vscode from 'vscode';
import { DeployCommands } from '../deploys/commandIds';
import { decideApproval } from '../deploys/decideApproval';
import type { DeployCommandArg } from '../deploys/deployArgs';
import type { CommandDeps } from './deps';

/** Rejects a pending promotion (asking for an optional reason): its run's deploy stage fails there. */
export function registerReject(context: vscode.ExtensionContext, deps: CommandDeps): void {
  context.subscriptions.push(vscode.commands.registerCommand(DeployCommands.reject, (arg?: DeployCommandArg) => decideApproval(deps, 'reject', arg)));
}
