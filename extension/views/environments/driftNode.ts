import * as vscode from 'vscode';
import type { DriftItem, SyncInfo } from '../../../agent/protocol';
import { GitOpsCommands } from '../../deploys/commandIds';
import { causesWord } from '../../deploys/format';
import type { FolderSession } from '../../session/folderSession';
import { shortSha } from '../../util/time';
import { driftIcon, EnvironmentIcons } from './environmentIcons';
import { escapeMarkdown, type EnvironmentNode } from './environmentNode';

/**
 * What differs between an out-of-sync environment's desired state in git and its live state:
 * `Drift`, with one child per difference the agent reported (its message).
 */
export class DriftNode extends vscode.TreeItem {
  readonly kind = 'drift' as const;
  readonly folder: string;
  readonly environment: string;

  constructor(
    readonly parent: EnvironmentNode,
    readonly session: FolderSession,
    readonly sync: SyncInfo,
  ) {
    super('Drift', vscode.TreeItemCollapsibleState.Expanded);
    this.folder = session.folder.uri.fsPath;
    this.environment = sync.environment;
    this.id = `${parent.id}/drift`;
    const n = sync.diff.length;
    this.description = [`${n} difference${n === 1 ? '' : 's'}`, causesWord(sync.causes)].filter(Boolean).join(' · ');
    this.iconPath = EnvironmentIcons.drift;
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**Drift** of ${escapeMarkdown(sync.environment)}: ${causesWord(sync.causes)}`);
    md.appendMarkdown(`\n\ndesired state ${escapeMarkdown(sync.file)}${sync.revision ? ` at \`${shortSha(sync.revision)}\`` : ''}`);
    if (sync.paused) md.appendMarkdown('\n\n$(debug-pause) reconciling is paused: nothing is applied until it is resumed or synced');
    this.tooltip = md;
    this.contextValue = ['drift', ...sync.causes.map((c) => `cause:${c}`), sync.paused ? 'reconcile:paused' : 'reconcile:active'].join(' ');
    this.accessibilityInformation = { label: `Drift of ${sync.environment}: ${n} difference${n === 1 ? '' : 's'}, ${causesWord(sync.causes)}` };
  }

  getChildren(): DriftItemNode[] {
    return this.sync.diff.map((item, i) => new DriftItemNode(this, this.session, item, i));
  }
}

/** One difference: its message; a click opens the desired state at the line of its key. */
export class DriftItemNode extends vscode.TreeItem {
  readonly kind = 'driftItem' as const;
  readonly folder: string;
  readonly environment: string;

  constructor(
    readonly parent: DriftNode,
    readonly session: FolderSession,
    readonly item: DriftItem,
    index: number,
  ) {
    super(item.message, vscode.TreeItemCollapsibleState.None);
    this.folder = session.folder.uri.fsPath;
    this.environment = parent.environment;
    this.id = `${parent.id}/${index}:${item.path}`;
    this.description = item.path;
    this.iconPath = driftIcon(item.kind);
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`${escapeMarkdown(item.message)}\n\n`);
    md.appendMarkdown(`${escapeMarkdown(item.path)} (${item.kind})`);
    md.appendMarkdown(`  \ndesired: ${escapeMarkdown(item.desired ?? '(none)')}`);
    md.appendMarkdown(`  \nlive: ${escapeMarkdown(item.live ?? '(none)')}`);
    this.tooltip = md;
    this.contextValue = `driftItem kind:${item.kind}`;
    this.command = { title: 'Open Desired State', command: GitOpsCommands.openDesiredState, arguments: [this] };
    this.accessibilityInformation = { label: `${item.kind}: ${item.message}` };
  }
}
