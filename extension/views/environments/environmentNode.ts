import * as vscode from 'vscode';
import type { EnvironmentConfig, EnvironmentStatus, RuntimeName, PromotionMode, SyncInfo } from '../../../agent/protocol';
import { DeployCommands, GitOpsCommands } from '../../deploys/commandIds';
import { causesWord, deploymentWord, healthWord, otherReleases, releaseName, shortDigest, syncWord } from '../../deploys/format';
import type { FolderSession } from '../../session/folderSession';
import { absoluteTime, relativeTime, shortSha } from '../../util/time';
import { Icons } from '../icons';
import type { ApprovalNode } from './approvalNode';
import type { DeploymentNode } from './deploymentNode';
import type { DriftItemNode, DriftNode } from './driftNode';
import { environmentIcon, healthCodicon } from './environmentIcons';
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
  md.isTrusted = { enabledCommands: [DeployCommands.openEnvironment, GitOpsCommands.showDrift, GitOpsCommands.previewSync] };
  return md;
}

/** How many drift items an environment's tooltip lists; the Drift node lists them all. */
const TOOLTIP_DRIFT_ITEMS = 5;

/** Markdown-escapes text the agent or the user wrote. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}

/**
 * An environment: runtime, promotion, sync status against git, health (its icon), its live
 * release; below it the live release, the drift when it is out of sync, a pending approval, the
 * deployment holding its lock and those queued behind it, and the earlier releases. Made from
 * conveyor.yml until the agent's status is known.
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

  /** True when an environment with this status shows children: its releases, drift, approval, deployments. */
  static hasChildren(status: EnvironmentStatus | undefined): boolean {
    return !!status && (!!status.live || EnvironmentNode.hasDrift(status) || !!status.pendingApproval || !!status.current || status.queue.length > 0 || status.releases.length > 0);
  }

  /** True when the environment is out of sync with git and the agent listed the differences (its Drift node). */
  static hasDrift(status: EnvironmentStatus | undefined): boolean {
    return status?.sync?.sync === 'OutOfSync' && status.sync.diff.length > 0;
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
    const sync = status?.sync ?? null;
    const parts = [runtime, `${promotion} promotion`];
    // Nothing deployed (nor desired) yet says so by its icon; from then on, sync and health are words too.
    if (sync && (live || sync.sync !== 'Synced')) parts.push(syncWord(sync.sync));
    if (status && (live || status.health !== 'Missing')) parts.push(status.health);
    if (sync?.paused) parts.push('paused');
    if (live) parts.push(`@${live.number}`);
    if (status?.current) parts.push(`deploying #${status.current.id}${status.queue.length ? ` (${status.queue.length} queued)` : ''}`);
    if (status?.pendingApproval) parts.push('approval pending');
    this.description = parts.join(' · ');
    this.iconPath = status ? environmentIcon(status.health, sync?.sync) : Icons.environment;
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
    if (sync) this.syncTooltip(md, sync);
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
      sync ? 'gitops' : '',
      sync ? `sync:${sync.sync}` : '',
      sync ? `reconcile:${sync.paused ? 'paused' : 'active'}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    const a11y = [`Environment ${this.name}: runtime ${runtime}, ${promotion} promotion`];
    if (sync && (live || sync.sync !== 'Synced')) a11y.push(sync.sync === 'OutOfSync' ? 'out of sync with git' : sync.sync === 'Synced' ? 'in sync with git' : 'sync with git unknown');
    if (sync?.paused) a11y.push('reconciling paused');
    if (status) a11y.push(healthWord(status.health));
    if (live) a11y.push(`live release ${live.number}${status?.liveSince ? `, ${relativeTime(status.liveSince, now)}` : ''}`);
    if (status?.pendingApproval) a11y.push('an approval is pending');
    this.accessibilityInformation = { label: a11y.join(', ') };
    return this;
  }

  /** The GitOps part of the tooltip: sync status, where the desired state is, the differences and the error. */
  private syncTooltip(md: vscode.MarkdownString, sync: SyncInfo): void {
    md.appendMarkdown(`\n\n$(git-compare) **${syncWord(sync.sync)}** with ${escapeMarkdown(sync.file)}${sync.revision ? ` at \`${shortSha(sync.revision)}\`` : ''}`);
    if (sync.causes.length) md.appendMarkdown(`: ${causesWord(sync.causes)}`);
    const policy = sync.policy.manual ? 'manual sync' : ['auto sync', sync.policy.selfHeal ? 'self-heal' : '', sync.policy.prune ? 'prune' : ''].filter(Boolean).join(', ');
    md.appendMarkdown(`  \n${sync.paused ? '$(debug-pause) reconciling paused: changes are reported, not applied' : policy}`);
    if (sync.diff.length) {
      md.appendMarkdown('\n\n');
      md.appendMarkdown(sync.diff.slice(0, TOOLTIP_DRIFT_ITEMS).map((i) => `- ${escapeMarkdown(i.message)}`).join('\n'));
      if (sync.diff.length > TOOLTIP_DRIFT_ITEMS) md.appendMarkdown(`\n- … and ${sync.diff.length - TOOLTIP_DRIFT_ITEMS} more`);
    }
    if (sync.error) {
      const where = sync.error.line !== null ? `${sync.file}:${sync.error.line}` : '';
      const located = !where || sync.error.message.startsWith(`${sync.file}:`) ? '' : `${escapeMarkdown(where)}: `;
      md.appendMarkdown(`\n\n$(error) ${located}${escapeMarkdown(sync.error.message.replace(/\s*\n\s*/g, ' '))}`);
    }
    if (sync.sync === 'OutOfSync') md.appendMarkdown(`\n\n${commandLink('Show Drift', GitOpsCommands.showDrift, this.ref)} · ${commandLink('Preview Sync', GitOpsCommands.previewSync, this.ref)}`);
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
  | ReleaseNode
  | DriftNode
  | DriftItemNode;
