import * as vscode from 'vscode';
import type { ApprovalInfo, EnvironmentStatus, Release } from '../../agent/protocol';
import type { CommandDeps } from '../commands/deps';
import { pickSession } from '../commands/resolve';
import type { FolderSession } from '../session/folderSession';
import { relativeTime } from '../util/time';
import { ApprovalNode } from '../views/environments/approvalNode';
import { DeploymentNode } from '../views/environments/deploymentNode';
import { DriftItemNode, DriftNode } from '../views/environments/driftNode';
import { EnvironmentNode } from '../views/environments/environmentNode';
import { LiveReleaseNode, ReleaseNode, ReleasesNode } from '../views/environments/releaseNode';
import { approvalTitle, otherReleases, releaseLine, releaseName } from './format';

/**
 * What another extension, a notification or a test may pass to the deploy commands instead of
 * a tree node: the folder (path or name; default the only one, or a pick), the environment,
 * and per command a release, an approval, a reason, a source environment or a run.
 */
export interface DeployArg {
  folder?: string;
  environment?: string;
  release?: number;
  approvalId?: number;
  reason?: string;
  from?: string;
  run?: number;
  /** A drift item's path (env.NAME, replicas, image (…)): Open Desired State goes to its key's line. */
  path?: string;
}

/** Every node of the Environments view that names an environment. */
export type EnvironmentTreeArg = EnvironmentNode | LiveReleaseNode | ReleaseNode | ReleasesNode | ApprovalNode | DeploymentNode | DriftNode | DriftItemNode;

/** What a deploy command may be given: a node, `{ folder, environment, … }`, or an environment name. */
export type DeployCommandArg = EnvironmentTreeArg | DeployArg | string | number | undefined;

export interface EnvironmentRefResolved {
  session: FolderSession;
  status: EnvironmentStatus;
}

function isTreeArg(arg: DeployCommandArg): arg is EnvironmentTreeArg {
  return (
    arg instanceof EnvironmentNode ||
    arg instanceof LiveReleaseNode ||
    arg instanceof ReleaseNode ||
    arg instanceof ReleasesNode ||
    arg instanceof ApprovalNode ||
    arg instanceof DeploymentNode ||
    arg instanceof DriftNode ||
    arg instanceof DriftItemNode
  );
}

/** The DeployArg form of an argument (an object that is no tree node), if it is one. */
export function deployArgOf(arg: DeployCommandArg): DeployArg {
  if (arg && typeof arg === 'object' && !isTreeArg(arg)) return arg;
  return {};
}

function environmentNameOf(arg: DeployCommandArg): string | undefined {
  if (arg instanceof EnvironmentNode) return arg.name;
  if (arg instanceof LiveReleaseNode || arg instanceof ReleaseNode || arg instanceof DriftNode || arg instanceof DriftItemNode) return arg.environment;
  if (arg instanceof ReleasesNode) return arg.status.name;
  if (arg instanceof ApprovalNode) return arg.approval.environment;
  if (arg instanceof DeploymentNode) return arg.deployment.environment;
  if (typeof arg === 'string' && !/^#?\d+$/.test(arg)) return arg;
  return deployArgOf(arg).environment;
}

/** The folder session an argument names, else the only one, else the user's pick. */
export async function sessionOf(deps: CommandDeps, arg: DeployCommandArg, placeHolder: string): Promise<FolderSession | undefined> {
  if (isTreeArg(arg)) return arg.session;
  return pickSession(deps.sessions, deployArgOf(arg).folder, placeHolder);
}

/** A QuickPick line for an environment: `staging`, `process · auto promotion · Healthy`, its live release. */
export function environmentItem(s: EnvironmentStatus, now = Date.now()): vscode.QuickPickItem & { status: EnvironmentStatus } {
  const live = s.live ? `live: ${releaseName(s.name, s.live.number)} · ${releaseLine(s.live, s.liveSince, s.liveBy, now)}` : 'nothing deployed yet';
  const busy = s.current ? ` · deploying #${s.current.id}${s.queue.length ? `, ${s.queue.length} queued` : ''}` : '';
  const approval = s.pendingApproval ? ` · ${approvalTitle(s.pendingApproval)}` : '';
  return { label: s.name, description: `${s.runtime} · ${s.promotion} promotion · ${s.health}`, detail: `${live}${busy}${approval}`, status: s };
}

/**
 * The environment a command acts on: the one its node or argument names (checked against what
 * the agent lists now), else the user's pick among those `filter` accepts. Throws when the
 * agent cannot be reached or the environment does not exist; undefined when the user
 * dismissed a pick or there was nothing to pick from (after saying so).
 */
export async function resolveEnvironment(
  deps: CommandDeps,
  arg: DeployCommandArg,
  placeHolder: string,
  filter: (s: EnvironmentStatus) => boolean = () => true,
  emptyMessage = 'no environment to choose from',
): Promise<EnvironmentRefResolved | undefined> {
  const session = await sessionOf(deps, arg, placeHolder);
  if (!session) return undefined;
  const statuses = await deps.deploys.load(session);
  const name = environmentNameOf(arg);
  if (name !== undefined) {
    const status = statuses.find((s) => s.name === name);
    if (!status) throw new Error(`there is no environment named "${name}"${statuses.length ? ` (environments: ${statuses.map((s) => s.name).join(', ')})` : ''}`);
    return { session, status };
  }
  const status = await pickEnvironment(statuses.filter(filter), placeHolder, emptyMessage);
  return status ? { session, status } : undefined;
}

/** A QuickPick of environments; says so and gives undefined when there is none. */
export async function pickEnvironment(statuses: readonly EnvironmentStatus[], placeHolder: string, emptyMessage: string): Promise<EnvironmentStatus | undefined> {
  if (statuses.length === 0) {
    void vscode.window.showInformationMessage(`Conveyor: ${emptyMessage}.`);
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(
    statuses.map((s) => environmentItem(s)),
    { placeHolder, matchOnDescription: true, matchOnDetail: true },
  );
  return picked?.status;
}

/** A QuickPick of the releases an environment can go back to (not the live one, nor one on its way), newest first. */
export async function pickRelease(status: EnvironmentStatus, placeHolder: string): Promise<Release | undefined> {
  const releases = otherReleases(status);
  if (releases.length === 0) {
    void vscode.window.showInformationMessage(`Conveyor: ${status.name} has no other release to roll back to.`);
    return undefined;
  }
  const now = Date.now();
  const liveNumber = status.live?.number;
  const picked = await vscode.window.showQuickPick(
    releases.map((r) => ({
      label: releaseName(status.name, r.number),
      description: releaseLine(r, null, null, now),
      detail: [r.runId !== null ? `built by run #${r.runId}` : '', liveNumber !== undefined && r.number < liveNumber ? 'earlier than the live release' : '', `created ${relativeTime(r.createdAt, now)}`]
        .filter(Boolean)
        .join(' · '),
      release: r,
    })),
    { placeHolder, matchOnDescription: true },
  );
  return picked?.release;
}

export interface ApprovalRef {
  session: FolderSession;
  /** The approval as the agent listed it, when it was pending there. */
  approval: ApprovalInfo | undefined;
  id: number;
}

/**
 * The approval a command decides: its node's, its environment's pending one, the one named
 * (`{ folder, approvalId }`, "#3", 3), else the user's pick among the pending ones (the only
 * one without asking).
 */
export async function resolveApproval(deps: CommandDeps, arg: DeployCommandArg, verb: string): Promise<ApprovalRef | undefined> {
  if (arg instanceof ApprovalNode) return { session: arg.session, approval: arg.approval, id: arg.approval.id };
  const given = typeof arg === 'number' ? arg : typeof arg === 'string' && /^#?\d+$/.test(arg) ? Number(arg.replace('#', '')) : deployArgOf(arg).approvalId;
  if (given !== undefined) {
    const session = await sessionOf(deps, arg, `${verb} approval #${given} of which folder?`);
    if (!session) return undefined;
    const approval = (await deps.deploys.load(session)).map((s) => s.pendingApproval).find((a) => a?.id === given) ?? undefined;
    return { session, approval, id: given };
  }
  const envName = environmentNameOf(arg);
  const sessions = isTreeArg(arg) || deployArgOf(arg).folder ? [await sessionOf(deps, arg, '')].filter((s): s is FolderSession => !!s) : deps.sessions.list();
  const pending: { session: FolderSession; approval: ApprovalInfo }[] = [];
  for (const session of sessions) {
    for (const s of await deps.deploys.load(session)) {
      if (s.pendingApproval && (envName === undefined || s.name === envName)) pending.push({ session, approval: s.pendingApproval });
    }
  }
  if (pending.length === 0) {
    void vscode.window.showInformationMessage(`Conveyor: no approval is pending${envName ? ` for ${envName}` : ''}.`);
    return undefined;
  }
  if (pending.length === 1) return { ...pending[0], id: pending[0].approval.id };
  const picked = await vscode.window.showQuickPick(
    pending.map((p) => ({
      label: approvalTitle(p.approval),
      description: [`approval #${p.approval.id}`, p.approval.runId !== null ? `run #${p.approval.runId}` : '', deps.sessions.multiRoot ? p.session.folder.name : ''].filter(Boolean).join(' · '),
      detail: `requested ${relativeTime(p.approval.requestedAt)}`,
      ref: { ...p, id: p.approval.id },
    })),
    { placeHolder: `${verb} which deployment?` },
  );
  return picked?.ref;
}
