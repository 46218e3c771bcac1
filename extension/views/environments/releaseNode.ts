import * as vscode from 'vscode';
import type { EnvironmentStatus, Release } from '../../../agent/protocol';
import { DeployCommands } from '../../deploys/commandIds';
import { otherReleases, releaseLine, releaseName, shortDigest } from '../../deploys/format';
import type { FolderSession } from '../../session/folderSession';
import { absoluteTime, relativeTime, shortSha } from '../../util/time';
import { EnvironmentIcons } from './environmentIcons';
import { commandLink, escapeMarkdown, trustedMarkdown, type EnvironmentNode } from './environmentNode';

function releaseTooltip(md: vscode.MarkdownString, r: Release): void {
  md.appendMarkdown(`artifact \`${r.artifact.digest}\`${r.artifact.kind === 'image' ? ` (${escapeMarkdown(r.artifact.repository)})` : ` (${escapeMarkdown(r.artifact.name)})`}`);
  if (r.commit) md.appendMarkdown(`  \ncommit \`${r.commit}\``);
  if (r.runId !== null) md.appendMarkdown(`  \nbuilt by run #${r.runId}`);
  md.appendMarkdown(`  \ncreated ${absoluteTime(r.createdAt)} by ${escapeMarkdown(r.createdBy)}`);
}

/** The release an environment serves: `staging@7`, digest, commit, since when and by whom. */
export class LiveReleaseNode extends vscode.TreeItem {
  readonly kind = 'live' as const;
  readonly release: Release;
  /** Runs and folders for commands given this node (Open Commit, Show Logs read them). */
  readonly folder: string;
  readonly environment: string;

  constructor(
    readonly parent: EnvironmentNode,
    readonly session: FolderSession,
    status: EnvironmentStatus & { live: Release },
    now = Date.now(),
  ) {
    const live = status.live;
    super(releaseName(status.name, live.number), vscode.TreeItemCollapsibleState.None);
    this.release = live;
    this.folder = session.folder.uri.fsPath;
    this.environment = status.name;
    this.id = `${parent.id}/live`;
    this.description = `live · ${releaseLine(live, status.liveSince, status.liveBy, now)}`;
    this.iconPath = EnvironmentIcons.live;
    const md = trustedMarkdown();
    md.appendMarkdown(`**${releaseName(status.name, live.number)}** is live`);
    if (status.liveSince) md.appendMarkdown(` since ${absoluteTime(status.liveSince)} (${relativeTime(status.liveSince, now)})${status.liveBy ? ` by ${escapeMarkdown(status.liveBy)}` : ''}`);
    md.appendMarkdown('\n\n');
    releaseTooltip(md, live);
    if (status.url) md.appendMarkdown(`\n\n${status.url} · ${commandLink('Open in Browser', DeployCommands.openEnvironment, parent.ref)}`);
    this.tooltip = md;
    this.contextValue = ['release', 'live', status.url ? 'hasUrl' : ''].filter(Boolean).join(' ');
    this.accessibilityInformation = {
      label: `Live release ${live.number} of ${status.name}, artifact ${shortDigest(live.artifact.digest)}${live.commit ? `, commit ${shortSha(live.commit)}` : ''}`,
    };
  }
}

/** The releases an environment served or tried before: each can be rolled back to. */
export class ReleasesNode extends vscode.TreeItem {
  readonly kind = 'releases' as const;

  constructor(
    readonly parent: EnvironmentNode,
    readonly session: FolderSession,
    readonly status: EnvironmentStatus,
  ) {
    super('Previous releases', vscode.TreeItemCollapsibleState.Collapsed);
    this.id = `${parent.id}/releases`;
    this.description = String(this.releases().length);
    this.iconPath = EnvironmentIcons.releases;
    this.contextValue = 'releases';
  }

  /** Every release but the live one and those on their way, newest first. */
  releases(): Release[] {
    return otherReleases(this.status);
  }

  getChildren(now = Date.now()): ReleaseNode[] {
    return this.releases().map((r) => new ReleaseNode(this, this.session, this.status, r, now));
  }
}

/** A release other than the live one: `staging@6`, with "Rollback to This Release". */
export class ReleaseNode extends vscode.TreeItem {
  readonly kind = 'release' as const;
  readonly folder: string;
  readonly environment: string;

  constructor(
    readonly parent: ReleasesNode,
    readonly session: FolderSession,
    status: EnvironmentStatus,
    readonly release: Release,
    now = Date.now(),
  ) {
    super(releaseName(status.name, release.number), vscode.TreeItemCollapsibleState.None);
    this.folder = session.folder.uri.fsPath;
    this.environment = status.name;
    this.id = `${parent.id}/${release.number}`;
    this.description = releaseLine(release, null, null, now);
    this.iconPath = EnvironmentIcons.release;
    const md = trustedMarkdown();
    md.appendMarkdown(`**${releaseName(status.name, release.number)}**\n\n`);
    releaseTooltip(md, release);
    this.tooltip = md;
    this.contextValue = 'release rollbackable';
    this.accessibilityInformation = { label: `Release ${release.number} of ${status.name}, created ${relativeTime(release.createdAt, now)} by ${release.createdBy}` };
  }
}
