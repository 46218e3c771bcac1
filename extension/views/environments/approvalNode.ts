import * as vscode from 'vscode';
import type { ApprovalInfo } from '../../../agent/protocol';
import { approvalTitle, releaseName } from '../../deploys/format';
import type { FolderSession } from '../../session/folderSession';
import { absoluteTime, relativeTime } from '../../util/time';
import { EnvironmentIcons } from './environmentIcons';
import type { EnvironmentNode } from './environmentNode';

/** A manual promotion waiting for a person: `production@2 is waiting for approval`, with Approve and Reject. */
export class ApprovalNode extends vscode.TreeItem {
  readonly kind = 'approval' as const;
  readonly folder: string;

  constructor(
    readonly parent: EnvironmentNode,
    readonly session: FolderSession,
    readonly approval: ApprovalInfo,
    now = Date.now(),
  ) {
    super(approvalTitle(approval), vscode.TreeItemCollapsibleState.None);
    this.folder = session.folder.uri.fsPath;
    this.id = `${parent.id}/approval-${approval.id}`;
    this.description = [`approval #${approval.id}`, approval.runId !== null ? `run #${approval.runId}` : '', relativeTime(approval.requestedAt, now)].filter(Boolean).join(' · ');
    this.iconPath = EnvironmentIcons.approval;
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**Approval #${approval.id}**: deploy ${releaseName(approval.environment, approval.release)}`);
    if (approval.runId !== null) md.appendMarkdown(` for run #${approval.runId}${approval.stage ? ` (stage ${approval.stage})` : ''}`);
    md.appendMarkdown(`\n\nrequested ${absoluteTime(approval.requestedAt)}\n\nApprove to deploy it, reject to stop the run there.`);
    this.tooltip = md;
    this.contextValue = 'approval pending';
    this.accessibilityInformation = { label: `${approvalTitle(approval)}, approval ${approval.id}` };
  }
}
