import * as vscode from 'vscode';
import type { DeploymentInfo } from '../../../agent/protocol';
import { deploymentWord, releaseName } from '../../deploys/format';
import type { FolderSession } from '../../session/folderSession';
import { absoluteTime, durationBetween } from '../../util/time';
import { deploymentIcon, EnvironmentIcons } from './environmentIcons';
import type { EnvironmentNode } from './environmentNode';

/**
 * A deployment holding the environment's lock (in progress), or one queued behind it. Carries
 * `folder`, `runId` and `stage` when a pipeline's deploy stage made it, so Show Logs opens that
 * stage's log from the node.
 */
export class DeploymentNode extends vscode.TreeItem {
  readonly kind = 'deployment' as const;
  readonly folder: string;
  readonly runId: number | undefined;
  readonly stage: string | undefined;

  constructor(
    readonly parent: EnvironmentNode,
    readonly session: FolderSession,
    readonly deployment: DeploymentInfo,
    /** 0 for the deployment holding the lock; 1, 2, … for its place in the queue. */
    readonly place: number,
    queueLength: number,
    progress: string | undefined,
    now = Date.now(),
  ) {
    const d = deployment;
    super(`#${d.id} → ${releaseName(d.environment, d.toRelease)}`, vscode.TreeItemCollapsibleState.None);
    this.folder = session.folder.uri.fsPath;
    this.runId = d.runId ?? undefined;
    this.stage = d.stage ?? undefined;
    this.id = `${parent.id}/deployment-${d.id}`;
    const took = durationBetween(d.startedAt, d.finishedAt, now);
    const parts =
      place === 0
        ? [deploymentWord(d.status), took, 'holds the lock', progress]
        : [`queued ${place} of ${queueLength}`, 'waits for the lock'];
    this.description = parts.filter(Boolean).join(' · ');
    this.iconPath = place === 0 ? deploymentIcon(d.status) : EnvironmentIcons.locked;
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**Deploy #${d.id}**: ${d.environment} ${d.fromRelease ?? '∅'} → ${d.toRelease} (${d.trigger}, ${d.strategy})`);
    md.appendMarkdown(`\n\n${place === 0 ? `$(lock) holds the lock of ${d.environment}` : `$(lock) waits for the lock of ${d.environment} (${place} of ${queueLength})`}`);
    md.appendMarkdown(`\n\nrequested by ${d.requestedBy} ${absoluteTime(d.queuedAt)}`);
    if (d.startedAt) md.appendMarkdown(`  \nstarted ${absoluteTime(d.startedAt)}`);
    if (d.runId !== null) md.appendMarkdown(`  \nrun #${d.runId}${d.stage ? `, stage ${d.stage}` : ''}`);
    if (progress && place === 0) {
      md.appendMarkdown('\n\n');
      md.appendText(progress);
    }
    this.tooltip = md;
    this.contextValue = ['deployment', `status:${d.status}`, place === 0 ? 'current' : 'queued', this.runId !== undefined && this.stage ? 'hasLogs' : ''].filter(Boolean).join(' ');
    this.accessibilityInformation = {
      label: place === 0 ? `Deploy ${d.id} to release ${d.toRelease}: ${deploymentWord(d.status)}, holds the lock` : `Deploy ${d.id} to release ${d.toRelease}: queued, ${place} of ${queueLength}`,
    };
  }
}
