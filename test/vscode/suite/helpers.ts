import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AgentDiscovery } from '../../../agent/protocol';
import type { ConveyorExports, ConveyorTestApi } from '../../../extension/extension';
import type { FolderSession } from '../../../extension/session/folderSession';

export const EXTENSION_ID = 'conveyor.conveyor';

export async function conveyor(): Promise<ConveyorTestApi> {
  const ext = vscode.extensions.getExtension<ConveyorExports>(EXTENSION_ID);
  if (!ext) throw new Error(`extension ${EXTENSION_ID} is not installed`);
  const api = ext.isActive ? ext.exports : await ext.activate();
  return api.testApi;
}

export function workspaceFolder(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error('no workspace folder is open');
  return folder.uri.fsPath;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `check` gives a truthy value; bounded, never a timing assertion. */
export async function until<T>(check: () => T | Promise<T>, what: string, timeoutMs = 60_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(50);
  }
}

export function readDiscovery(folder: string): AgentDiscovery | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(folder, '.conveyor', 'agent.json'), 'utf8')) as AgentDiscovery;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function connectedSession(api: ConveyorTestApi): Promise<FolderSession> {
  return until(() => {
    const s = api.sessions.list()[0];
    return s && s.state === 'connected' && s.http ? s : undefined;
  }, 'the folder session to connect to its agent', 90_000);
}

/** Waits until the run is finished in the extension's model. */
export async function finishedRun(session: FolderSession, id: number, timeoutMs = 60_000) {
  return until(() => {
    const r = session.model.get(id);
    return r && ['succeeded', 'failed', 'cancelled', 'interrupted'].includes(r.summary.status) ? r : undefined;
  }, `run #${id} to finish`, timeoutMs);
}
