import * as vscode from 'vscode';
import type { StageInfo } from '../../../agent/protocol';
import type { FolderSession } from '../../session/folderSession';
import { durationBetween } from '../../util/time';
import { statusIcon, statusWord } from '../icons';
import type { RunNode } from './runNode';
import { StepNode } from './stepNode';

/** A stage of a run: status, duration and message; its steps below. */
export class StageNode extends vscode.TreeItem {
  readonly kind = 'stage' as const;
  private readonly steps = new Map<string, StepNode>();

  constructor(
    /** The run; for a cell of a matrix stage, that stage. */
    readonly parent: RunNode | StageNode,
    readonly session: FolderSession,
    readonly runId: number,
    readonly stage: string,
  ) {
    super(stage, vscode.TreeItemCollapsibleState.None);
    this.id = `${parent.id}/stage-${stage}`;
  }

  get info(): StageInfo | undefined {
    return this.session.model.get(this.runId)?.stages.find((s) => s.name === this.stage);
  }

  /** The cells of a matrix stage, in their order. */
  private get cells(): StageInfo[] {
    return this.session.model.get(this.runId)?.stages.filter((s) => s.matrix?.of === this.stage) ?? [];
  }

  private get run(): RunNode {
    return this.parent instanceof StageNode ? this.parent.run : this.parent;
  }

  /** True when the stage ran more than once (retries): steps then name their attempt. */
  get multipleAttempts(): boolean {
    return (this.info?.attempt ?? 0) > 1;
  }

  refresh(now = Date.now()): this {
    const stage = this.info;
    if (!stage) return this;
    const parts = [statusWord(stage.status)];
    if (stage.kind !== 'command' && !stage.matrix) parts.unshift(stage.kind);
    if (stage.matrix) {
      this.label = Object.entries(stage.matrix.cell).map(([k, v]) => `${k}=${v}`).join(', ');
      if (stage.matrix.optional) parts.push('optional');
    }
    const took = durationBetween(stage.startedAt, stage.finishedAt, now);
    if (took && stage.status !== 'pending' && stage.status !== 'skipped') parts.push(took);
    if (stage.attempt > 1) parts.push(`attempt ${stage.attempt}`);
    if (stage.message) parts.push(stage.message);
    this.description = parts.join(' · ');
    this.iconPath = statusIcon(stage.status);
    const started = stage.attempt > 0 || this.cells.length > 0;
    this.collapsibleState = started ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None;
    if (started && stage.status === 'running') this.collapsibleState = vscode.TreeItemCollapsibleState.Expanded;
    const tooltip = new vscode.MarkdownString(`**${stage.name}**: ${statusWord(stage.status)}${took ? ` in ${took}` : ''}`);
    if (stage.needs.length) tooltip.appendMarkdown(`\n\nneeds: ${stage.needs.join(', ')}`);
    if (stage.message) tooltip.appendMarkdown(`\n\n${escape(stage.message)}`);
    this.tooltip = tooltip;
    this.contextValue = `stage status:${stage.status}${started ? ' hasLogs' : ''}`;
    this.accessibilityInformation = { label: `Stage ${stage.name}: ${statusWord(stage.status)}${took ? ` in ${took}` : ''}${stage.message ? `, ${stage.message}` : ''}` };
    return this;
  }

  getChildren(): (StageNode | StepNode)[] {
    const cells = this.cells.map((c) => this.run.stageNode(c.name));
    return [...cells, ...this.stepNodes()];
  }

  private stepNodes(): StepNode[] {
    const steps = this.session.model.get(this.runId)?.steps.filter((s) => s.stage === this.stage) ?? [];
    return steps.map((s) => {
      const key = `${s.attempt}-${s.index}`;
      let node = this.steps.get(key);
      if (!node) {
        node = new StepNode(this, this.session, this.runId, this.stage, s.attempt, s.index);
        this.steps.set(key, node);
      }
      return node;
    });
  }
}

function escape(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}
