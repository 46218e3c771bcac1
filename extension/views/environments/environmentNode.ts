import * as vscode from 'vscode';
import type { EnvironmentConfig, EnvironmentStatus, RuntimeName, PromotionMode } from '../../../agent/protocol';
import { DeployCommands } from '../../deploys/commandIds';
import { deploymentWord, healthWord, otherReleases, releaseName, shortDigest } from '../../deploys/format';
import type { FolderSession } from '../../session/folderSession';
import { absoluteTime, relativeTime, shortSha } from '../../util/time';
import { Icons } from '../icons';
import type { ApprovalNode } from './approvalNode';
import type { DeploymentNode } from './deploymentNode';
import { healthCodicon, healthIcon } from './environmentIcons';
import type { LiveReleaseNode, ReleaseNode, ReleasesNode } from './releaseNode';

/** How commands name an environment without a node: `{ folder, environment }`. */
export interface EnvironmentRef {
  folder: string;
  environment: string;
}

/** A `command:` link for a Markdown tooltip, with its arguments. */
export function commandLink(title: string, command: string, ...args: unknown[]): string {
  return `[${title}](command:${command}?${encodeURIComponent(JSON.stringify(args))})`;
}

/** Markdown that may run the deploy commands from its links (and nothing else). */
export function trustedMarkdown(): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.isTrusted = { enabledCommands: [DeployCommands.openEnvironment] };
  return md;
}

/** Markdown-escapes text the agent or the user wrote. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}

/**
 * An environment: runtime, promotion and health (its icon), its live release; below it the
 * live release, a pending approval, the deployment holding its lock and those queued behind it,
 * and the earlier releases. Made from conveyor.yml until the agent's status is known.
 */
export class EnvironmentNode extends vscode.TreeItem {
  readonly kind = 'environment' as const;
  status: EnvironmentStatus | undefined;
  /** True when the node has children (and so is drawn expandable) as last updated. */
  hasChildren = false;

  constructor(
    readonly session: FolderSession,
    readonly name: string,
    config: EnvironmentConfig | undefined,
    status: EnvironmentStatus | undefined,
  ) {
    super(name, vscode.TreeItemCollapsibleState.None);
    this.update(config, status);
  }

  /** True when an environment with this status shows children: its releases, approval, deployments. */
  static hasChildren(status: EnvironmentStatus | undefined): boolean {
    return !!status && (!!status.live || !!status.pendingApproval || !!status.current || status.queue.length > 0 || status.releases.length > 0);
  }

  /** `{ folder, environment }`: what the tooltip's links pass to commands. */
  get ref(): EnvironmentRef {
    return { folder: this.session.folder.uri.fsPath, environment: this.name };
  }

  /** Takes the latest config and status; the tree redraws the node after. */
  update(config: EnvironmentConfig | undefined, status: EnvironmentStatus | undefined, now = Date.now()): this {
    this.status = status;
    const runtime: RuntimeName = status?.runtime ?? config?.runtime ?? 'process';
    const promotion: PromotionMode = status?.promotion ?? config?.promotion ?? 'auto';
    const live = status?.live ?? null;
    const parts = [runtime, `${promotion} promotion`];
    // Nothing deployed yet says so by its icon; from the first deployment on, health is a word too.
    if (status && (live || status.health !== 'Missing')) parts.push(status.health);
    if (live) parts.push(`@${live.number}`);
    if (status?.current) parts.push(`deploying #${status.current.id}${status.queue.length ? ` (${status.queue.length} queued)` : ''}`);
    if (status?.pendingApproval) parts.push('approval pending');
    this.description = parts.join(' · ');
    this.iconPath = status ? healthIcon(status.health) : Icons.environment;
    this.hasChildren = EnvironmentNode.hasChildren(status);
    this.collapsibleState = this.hasChildren ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None;
    // The editor keeps the expansion it first saw for an id: an environment that gets its first
    // children becomes a new item, drawn expanded; after that, the user's choice is kept.
    this.id = `${this.session.folder.uri.toString()}#env-${this.name}${this.hasChildren ? '' : '~empty'}`;

    const md = trustedMarkdown();
    md.appendMarkdown(`**${escapeMarkdown(this.name)}**`);
    if (status) md.appendMarkdown(` · ${healthCodicon(status.health)} ${status.health}${status.health === 'Missing' ? ` (${healthWord(status.health)})` : ''}`);
    md.appendMarkdown(`\n\nruntime \`${runtime}\` · ${promotion} promotion`);
    if (config) md.appendMarkdown(` · ${config.strategy} · health check ${config.health.kind}${config.health.kind === 'http' ? ` \`${config.health.path}\`` : ''}`);
    if (status?.preview) md.appendMarkdown(`\n\npreview of \`${escapeMarkdown(status.preview.template)}\` for branch \`${escapeMarkdown(status.preview.branch)}\``);
    if (live && status) {
      md.appendMarkdown(`\n\nlive: **${releaseName(this.name, live.number)}** · \`${shortDigest(live.artifact.digest)}\``);
      if (live.commit) md.appendMarkdown(` · commit \`${shortSha(live.commit)}\``);
      if (live.runId !== null) md.appendMarkdown(` · run #${live.runId}`);
      if (status.liveSince) md.appendMarkdown(`  \nsince ${absoluteTime(status.liveSince)} (${relativeTime(status.liveSince, now)})${status.liveBy ? ` by ${escapeMarkdown(status.liveBy)}` : ''}`);
    } else if (status) {
      md.appendMarkdown('\n\nnothing deployed yet');
    }
    if (status?.url) md.appendMarkdown(`\n\n${status.url} · ${commandLink('Open in Browser', DeployCommands.openEnvironment, this.ref)}`);
    if (status?.current) {
      const c = status.current;
      md.appendMarkdown(`\n\n$(lock) locked by deploy #${c.id} → ${releaseName(this.name, c.toRelease)} (${deploymentWord(c.status)})`);
      if (status.queue.length) md.appendMarkdown(`; ${status.queue.length} queued behind it`);
    }
    if (status?.pendingApproval) md.appendMarkdown(`\n\n$(debug-pause) approval #${status.pendingApproval.id} pending for ${releaseName(this.name, status.pendingApproval.release)}`);
    this.tooltip = md;

    const earlier = status ? otherReleases(status).length > 0 : false;
    this.contextValue = [
      'environment',
      `runtime:${runtime}`,
      `promotion:${promotion}`,
      status ? `health:${status.health}` : '',
      status?.url ? 'hasUrl' : '',
      live ? 'hasLive' : '',
      earlier ? 'rollbackable' : '',
      status?.pendingApproval ? 'approvalPending' : '',
      status?.current ? 'locked' : '',
      status?.preview ? 'preview' : '',
    ]
      .filter(Boolean)
      .join(' ');
    const a11y = [`Environment ${this.name}: runtime ${runtime}, ${promotion} promotion`];
    if (status) a11y.push(healthWord(status.health));
    if (live) a11y.push(`live release ${live.number}${status?.liveSince ? `, ${relativeTime(status.liveSince, now)}` : ''}`);
    if (status?.pendingApproval) a11y.push('an approval is pending');
    this.accessibilityInformation = { label: a11y.join(', ') };
    return this;
  }
}

/** A folder, when several have a conveyor.yml. */
export class EnvironmentFolderNode extends vscode.TreeItem {
  readonly kind = 'folder' as const;

  constructor(readonly session: FolderSession) {
    super(session.folder.name, vscode.TreeItemCollapsibleState.Expanded);
    this.id = `envfolder:${session.folder.uri.toString()}`;
    this.iconPath = Icons.folder;
  }
}

/** conveyor.yml cannot be read: a line saying so, opening the Problems view. */
export class EnvironmentMessageNode extends vscode.TreeItem {
  readonly kind = 'message' as const;

  constructor(id: string, label: string, icon: vscode.ThemeIcon, command?: vscode.Command) {
    super(label, vscode.TreeItemCollapsibleState.None);
    this.id = id;
    this.iconPath = icon;
    this.command = command;
  }
}

export type EnvironmentTreeNode =
  | EnvironmentNode
  | EnvironmentFolderNode
  | EnvironmentMessageNode
  | LiveReleaseNode
  | ApprovalNode
  | DeploymentNode
  | ReleasesNode
  | ReleaseNode;
