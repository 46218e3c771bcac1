import * as vscode from 'vscode';
import type { RunSummary } from '../../../agent/protocol';
import { RunModel } from '../../model/runModel';
import type { FolderSession } from '../../session/folderSession';
import { absoluteTime, durationBetween, relativeTime, shortSha } from '../../util/time';
import { statusIcon, statusWord } from '../icons';
import type { FolderNode } from './folderNode';
import { StageNode } from './stageNode';

/** The title a run shows: its commit's first line, or "working tree". */
export function runTitle(run: RunSummary): string {
  if (!run.commit) return 'working tree';
  return run.title ?? shortSha(run.commit) ?? '';
}

/** One run: `#42 · title`, `branch · sha · 3 min ago`, its status icon; its stages below. */
export class RunNode extends vscode.TreeItem {
  readonly kind = 'run' as const;
  private readonly stages = new Map<string, StageNode>();

  constructor(
    readonly parent: FolderNode | undefined,
    readonly session: FolderSession,
    readonly runId: number,
    expanded: boolean,
  ) {
    super(`#${runId}`, expanded ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `${session.folder.uri.toString()}#run-${runId}`;
  }

  get summary(): RunSummary | undefined {
    return this.session.model.get(this.runId)?.summary;
  }

  refresh(now = Date.now()): this {
    const run = this.summary;
    if (!run) return this;
    const title = runTitle(run);
    this.label = `#${run.id} · ${title}`;
    const when = run.startedAt ?? run.queuedAt;
    this.description = [run.branch, shortSha(run.commit), relativeTime(when, now)].filter(Boolean).join(' · ');
    this.iconPath = statusIcon(run.status);
    const active = RunModel.isActive(run);
    this.contextValue = ['run', `status:${run.status}`, active ? 'cancellable' : 'rerunnable', run.commit ? 'hasCommit' : ''].filter(Boolean).join(' ');
    const took = durationBetween(run.startedAt, run.finishedAt, now);
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**Run #${run.id}** · $(${statusIcon(run.status).id}) ${statusWord(run.status)}${took ? ` in ${took}` : ''}\n\n`);
    md.appendText(title);
    md.appendMarkdown('\n\n');
    if (run.commit) md.appendMarkdown(`commit \`${run.commit}\`${run.branch ? ` on \`${run.branch}\`` : ''}  \n`);
    md.appendMarkdown(`${run.trigger} run of ${run.pipeline}: ${run.requestedStages.join(', ')}  \n`);
    md.appendMarkdown(`queued ${absoluteTime(run.queuedAt)}`);
    if (run.startedAt) md.appendMarkdown(`  \nstarted ${absoluteTime(run.startedAt)}`);
    if (run.finishedAt) md.appendMarkdown(`  \nfinished ${absoluteTime(run.finishedAt)}`);
    if (run.reason) {
      md.appendMarkdown('\n\n');
      md.appendText(run.reason);
    }
    this.tooltip = md;
    this.accessibilityInformation = {
      label: `Run #${run.id} ${statusWord(run.status)}: ${title}${run.branch ? `, branch ${run.branch}` : ''}, ${relativeTime(when, now)}`,
    };
    return this;
  }

  async getChildren(): Promise<StageNode[]> {
    await this.session.ensureDetail(this.runId);
    const run = this.session.model.get(this.runId);
    // The cells of a matrix stage are shown under it.
    return (run?.stages ?? []).filter((s) => !s.matrix).map((s) => this.stageNode(s.name));
  }

  stageNode(name: string): StageNode {
    let node = this.stages.get(name);
    if (!node) {
      const of = this.session.model.get(this.runId)?.stages.find((s) => s.name === name)?.matrix?.of;
      node = new StageNode(of ? this.stageNode(of) : this, this.session, this.runId, name);
      this.stages.set(name, node);
    }
    return node;
  }
}
