import * as vscode from 'vscode';
import { AgentApiError } from '../agent/agentApi';
import type { RunState } from '../model/runModel';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { errorMessage } from '../util/async';
import { relativeTime, shortSha } from '../util/time';
import { statusWord } from '../views/icons';
import { FolderNode } from '../views/pipelines/folderNode';
import { RunNode, runTitle } from '../views/pipelines/runNode';
import { StageNode } from '../views/pipelines/stageNode';
import { StepNode } from '../views/pipelines/stepNode';

/** A run named by a tree node, a number ("42", "#42") or `{ folder, runId }`. */
export interface RunRef {
  session: FolderSession;
  runId: number;
}

/** Arguments a command may get: a tree node from a menu, an ID from the palette or another extension. */
export type CommandArg = RunNode | StageNode | StepNode | FolderNode | number | string | vscode.Uri | { folder?: string; runId?: number } | undefined;

/**
 * In Restricted Mode nothing may run: says why and offers to manage trust. True when trusted.
 */
export function requireTrust(action: string): boolean {
  if (vscode.workspace.isTrusted) return true;
  void vscode.window
    .showWarningMessage(
      `Conveyor cannot ${action} in Restricted Mode: pipelines run the commands in conveyor.yml, so Conveyor starts no agent and runs nothing until you trust this workspace.`,
      'Manage Workspace Trust',
    )
    .then((choice) => (choice ? vscode.commands.executeCommand('workbench.trust.manage') : undefined))
    .then(undefined, () => undefined);
  return false;
}

/** The folder an argument names, if any. */
export function folderHint(arg: CommandArg): string | vscode.Uri | undefined {
  if (arg instanceof FolderNode || arg instanceof RunNode || arg instanceof StageNode || arg instanceof StepNode) return arg.session.folder.uri;
  if (arg instanceof vscode.Uri) return arg;
  if (typeof arg === 'string' && !/^#?\d+$/.test(arg)) return arg;
  if (arg && typeof arg === 'object' && 'folder' in arg && typeof arg.folder === 'string') return arg.folder;
  return undefined;
}

/** The session for a command, telling the user when there is none. */
export async function pickSession(sessions: SessionManager, arg: CommandArg, placeHolder: string): Promise<FolderSession | undefined> {
  const session = await sessions.pick(placeHolder, folderHint(arg));
  if (!session && sessions.list().length === 0) {
    void vscode.window
      .showInformationMessage('Conveyor: there is no conveyor.yml in this workspace.', 'Create Starter conveyor.yml')
      .then((c) => (c ? vscode.commands.executeCommand('conveyor.createStarterConfig') : undefined))
      .then(undefined, () => undefined);
  }
  return session;
}

function runIdOf(arg: CommandArg): number | undefined {
  if (typeof arg === 'number') return arg;
  if (typeof arg === 'string' && /^#?\d+$/.test(arg)) return Number(arg.replace('#', ''));
  if (arg && typeof arg === 'object' && 'runId' in arg && typeof arg.runId === 'number') return arg.runId;
  return undefined;
}

function describe(run: RunState): string {
  const s = run.summary;
  return [statusWord(s.status), s.branch, shortSha(s.commit), relativeTime(s.startedAt ?? s.queuedAt)].filter(Boolean).join(' · ');
}

/**
 * The run a command acts on: from the node or ID it was given, else picked from the runs the
 * views know (only those `filter` accepts).
 */
export async function resolveRun(sessions: SessionManager, arg: CommandArg, placeHolder: string, filter: (r: RunState) => boolean = () => true): Promise<RunRef | undefined> {
  if (arg instanceof RunNode || arg instanceof StageNode || arg instanceof StepNode) return { session: arg.session, runId: arg.runId };
  const id = runIdOf(arg);
  const hint = folderHint(arg);
  if (id !== undefined) {
    const session = await sessions.pick(`Run #${id} of which folder?`, hint);
    return session ? { session, runId: id } : undefined;
  }
  const scope = hint ? [sessions.forFolder(hint)].filter((s): s is FolderSession => !!s) : sessions.list();
  const items = scope.flatMap((session) =>
    session.model
      .list()
      .filter(filter)
      .map((run) => ({
        label: `#${run.summary.id} · ${runTitle(run.summary)}`,
        description: sessions.multiRoot ? `${session.folder.name} · ${describe(run)}` : describe(run),
        ref: { session, runId: run.summary.id },
      })),
  );
  if (items.length === 0) {
    void vscode.window.showInformationMessage(`Conveyor: no run to choose from (${placeHolder.replace(/\?$/, '').toLowerCase()}).`);
    return undefined;
  }
  return (await vscode.window.showQuickPick(items, { placeHolder, matchOnDescription: true }))?.ref;
}

/**
 * Runs a command body and turns its failure into one error message (with the agent's fix when
 * it gave one). Resolves with the body's result, or undefined after a failure.
 */
export async function reportErrors<T>(log: vscode.LogOutputChannel, what: string, body: () => PromiseLike<T>): Promise<T | undefined> {
  try {
    return await body();
  } catch (e) {
    const message = e instanceof AgentApiError ? e.message : errorMessage(e);
    log.error(`${what}: ${message}`);
    void vscode.window.showErrorMessage(`Conveyor: ${what} failed: ${message}`);
    return undefined;
  }
}
