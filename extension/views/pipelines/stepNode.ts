import * as vscode from 'vscode';
import type { StepInfo } from '../../../agent/protocol';
import { Commands } from '../../constants';
import type { FolderSession } from '../../session/folderSession';
import { durationBetween } from '../../util/time';
import { statusIcon, statusWord } from '../icons';
import type { StageNode } from './stageNode';

/** One command of a stage: its status, exit code and duration. A click opens its log. */
export class StepNode extends vscode.TreeItem {
  readonly kind = 'step' as const;

  constructor(
    readonly parent: StageNode,
    readonly session: FolderSession,
    readonly runId: number,
    readonly stage: string,
    readonly attempt: number,
    readonly index: number,
  ) {
    super('', vscode.TreeItemCollapsibleState.None);
    this.id = `${parent.id}/step-${attempt}-${index}`;
  }

  get info(): StepInfo | undefined {
    return this.session.model.get(this.runId)?.steps.find((s) => s.stage === this.stage && s.attempt === this.attempt && s.index === this.index);
  }

  /** Reads the model again; VS Code shows the item after getTreeItem. */
  refresh(now = Date.now()): this {
    const step = this.info;
    if (!step) return this;
    const firstLine = step.command.split('\n')[0];
    this.label = firstLine;
    const parts: string[] = [];
    if (step.exitCode !== null) parts.push(`exit ${step.exitCode}`);
    else if (step.status !== 'succeeded') parts.push(statusWord(step.status));
    const took = durationBetween(step.startedAt, step.finishedAt, now);
    if (took) parts.push(took);
    if (this.parent.multipleAttempts) parts.push(`attempt ${step.attempt}`);
    this.description = parts.join(' · ');
    this.iconPath = statusIcon(step.status);
    const tooltip = new vscode.MarkdownString();
    tooltip.appendCodeblock(step.command, 'shell');
    tooltip.appendMarkdown(`\n\n**${statusWord(step.status)}**${step.exitCode !== null ? `, exit code ${step.exitCode}` : ''}${took ? `, ${took}` : ''}`);
    this.tooltip = tooltip;
    const hasLogs = step.status !== 'skipped' && step.status !== 'pending';
    this.contextValue = `step status:${step.status}${hasLogs ? ' hasLogs' : ''}`;
    this.accessibilityInformation = { label: `Step ${firstLine}: ${statusWord(step.status)}${step.exitCode !== null ? `, exit code ${step.exitCode}` : ''}` };
    this.command = hasLogs ? { title: 'Show Logs', command: Commands.showLogs, arguments: [this] } : undefined;
    return this;
  }

  getChildren(): [] {
    return [];
  }
}
