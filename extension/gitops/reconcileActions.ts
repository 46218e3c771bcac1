import * as vscode from 'vscode';
import type { EnvironmentStatus, SyncInfo, SyncResult } from '../../agent/protocol';
import type { CommandDeps } from '../commands/deps';
import { resolveEnvironment, type DeployCommandArg, type EnvironmentRefResolved } from '../deploys/deployArgs';
import { followDeployment } from '../deploys/followDeployment';
import { syncWord } from '../deploys/format';
import type { FolderSession } from '../session/folderSession';

const NO_DESIRED_STATE = 'no environment has a desired state in git (the workspace is not in a git repository: run "git init" and commit, then restart the agent)';

/**
 * The environment a GitOps command acts on: the node's or the one named, else the user's pick
 * among those with a desired state in git that `filter` accepts.
 */
export function resolveGitOpsEnvironment(
  deps: CommandDeps,
  arg: DeployCommandArg,
  placeHolder: string,
  filter: (s: EnvironmentStatus) => boolean = () => true,
  emptyMessage = NO_DESIRED_STATE,
): Promise<EnvironmentRefResolved | undefined> {
  return resolveEnvironment(deps, arg, placeHolder, (s) => !!s.sync && filter(s), emptyMessage);
}

/** "nothing to do: Synced", with the reason when the agent could not compare. */
export function nothingToDo(sync: SyncInfo): string {
  return `nothing to do: ${syncWord(sync.sync)}${sync.error ? ` (${sync.error.message})` : ''}`;
}

/**
 * Applies an environment's desired state now, whatever its policy says: says there was nothing
 * to do, or follows the deployment the sync started (its plan and number in the progress
 * notification) to its end, or tells what was removed. Resolves with the agent's answer, its
 * deployment as it ended.
 */
export async function syncNow(deps: CommandDeps, session: FolderSession, environment: string): Promise<SyncResult> {
  const http = await session.requireApi();
  const result = await http.syncEnvironment(environment, { via: 'editor' });
  const plan = result.plan.join('; ');
  deps.log.info(`${session.folder.name}: sync ${environment}: ${plan || nothingToDo(result.sync)}${result.deployment ? ` (deploy #${result.deployment.id})` : ''}`);
  if (result.plan.length === 0) {
    void vscode.window.showInformationMessage(`Conveyor: ${environment}: ${nothingToDo(result.sync)}.`);
    return result;
  }
  if (result.deployment) {
    const last = await followDeployment(deps, session, result.deployment, `sync ${environment}, deploy #${result.deployment.id}: ${plan}`);
    return { ...result, deployment: last };
  }
  void vscode.window.showInformationMessage(`Conveyor: synced ${environment}: ${plan}.`);
  await deps.deploys.load(session);
  return result;
}

/**
 * Pauses or resumes the reconciler for an environment; the Environments view shows it at once.
 * Resolves with the environment's sync status as the agent answered.
 */
export async function setReconcilePaused(deps: CommandDeps, session: FolderSession, environment: string, paused: boolean): Promise<SyncInfo> {
  const http = await session.requireApi();
  const info = await http.setReconcilePaused(environment, paused);
  await deps.deploys.load(session);
  const message = paused
    ? `Conveyor: reconciling ${environment} is paused: commits to its desired state and drift are reported, not applied, until you resume it or sync.`
    : `Conveyor: reconciling ${environment} again (${syncWord(info.sync)}).`;
  deps.log.info(`${session.folder.name}: ${message.replace(/^Conveyor: /, '')}`);
  vscode.window.setStatusBarMessage(message, 8000);
  return info;
}
