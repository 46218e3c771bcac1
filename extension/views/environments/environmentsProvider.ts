import * as vscode from 'vscode';
import type { EnvironmentStatus, Release } from '../../../agent/protocol';
import { Commands } from '../../constants';
import type { EnvironmentsChange, EnvironmentStore } from '../../deploys/environmentStore';
import type { FolderSession } from '../../session/folderSession';
import type { SessionManager } from '../../session/sessionManager';
import { Icons } from '../icons';
import { RefreshScheduler } from '../refreshScheduler';
import { ApprovalNode } from './approvalNode';
import { DeploymentNode } from './deploymentNode';
import { DriftNode } from './driftNode';
import { EnvironmentFolderNode, EnvironmentMessageNode, EnvironmentNode, type EnvironmentTreeNode } from './environmentNode';
import { LiveReleaseNode, ReleasesNode } from './releaseNode';

/** Relative times ("3 min ago") are redrawn this often. */
const CLOCK_MS = 30_000;

/**
 * The Environments view: the environments conveyor.yml declares (GET /api/config, then
 * config.changed events), with what the agent says of each (EnvironmentStatus, kept current by
 * the EnvironmentStore from the deploy, sync and drift events). Environment nodes are kept and updated in place;
 * changes are coalesced into at most ten refreshes a second, of the changed environments only
 * when the list itself is unchanged.
 */
export class EnvironmentsProvider implements vscode.TreeDataProvider<EnvironmentTreeNode>, vscode.Disposable {
  private readonly _onDidChangeTreeData = new vscode.EventEmitter<EnvironmentTreeNode | EnvironmentTreeNode[] | undefined>();
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;
  readonly scheduler = new RefreshScheduler<EnvironmentTreeNode>(this._onDidChangeTreeData);
  private readonly modelSubs = new Map<FolderSession, vscode.Disposable>();
  /** Environment nodes by folder, then name: the same node while the environment exists. */
  private readonly envNodes = new Map<FolderSession, Map<string, EnvironmentNode>>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly clock: NodeJS.Timeout;

  constructor(
    private readonly sessions: SessionManager,
    private readonly store: EnvironmentStore,
  ) {
    this.disposables.push(
      this._onDidChangeTreeData,
      this.scheduler,
      sessions.onDidChangeSessions(() => this.sync()),
      sessions.onDidChangeState(() => this.scheduler.schedule()),
      store.onDidChange((c) => this.onStatusChange(c)),
    );
    this.sync();
    this.clock = setInterval(() => this.scheduler.schedule(), CLOCK_MS);
  }

  private sync(): void {
    const live = new Set(this.sessions.list());
    for (const [s, sub] of this.modelSubs) {
      if (!live.has(s)) {
        sub.dispose();
        this.modelSubs.delete(s);
        this.envNodes.delete(s);
      }
    }
    for (const s of live) {
      if (!this.modelSubs.has(s)) {
        this.modelSubs.set(
          s,
          s.model.onDidChange((c) => {
            if (c.configChanged) this.scheduler.schedule();
          }),
        );
      }
    }
    this.scheduler.schedule();
  }

  private onStatusChange(change: EnvironmentsChange): void {
    const nodes = this.envNodes.get(change.session);
    if (!change.names || !nodes) return this.scheduler.schedule();
    const changed = [...change.names].map((n) => nodes.get(n));
    // An environment the view has not drawn yet, or one that gets its first children or loses its
    // last (its id changes with that): the list is redrawn.
    if (changed.some((n) => !n || EnvironmentNode.hasChildren(this.store.status(change.session, n.name)) !== n.hasChildren)) return this.scheduler.schedule();
    this.scheduler.schedule(changed as EnvironmentNode[]);
  }

  getTreeItem(node: EnvironmentTreeNode): vscode.TreeItem {
    if (node.kind === 'environment') {
      const status = this.store.status(node.session, node.name);
      // A change of id is for a redraw of the list, not of this item: it comes next.
      if (EnvironmentNode.hasChildren(status) !== node.hasChildren) this.scheduler.schedule();
      else node.update(this.configOf(node.session, node.name), status);
    }
    return node;
  }

  getChildren(node?: EnvironmentTreeNode): EnvironmentTreeNode[] {
    if (!node) {
      const all = this.sessions.list();
      if (all.length === 1) return this.environmentsOf(all[0]);
      return all.map((s) => new EnvironmentFolderNode(s));
    }
    switch (node.kind) {
      case 'folder': {
        const envs = this.environmentsOf(node.session);
        // Several folders: each says what it has; one folder leaves an empty view to the welcome text.
        if (envs.length === 0) {
          const s = node.session;
          const label = s.state === 'offline' ? 'Agent not running' : s.model.config ? 'No environments in conveyor.yml' : 'Connecting to the agent…';
          return [new EnvironmentMessageNode(`${s.folder.uri.toString()}#no-env`, label, Icons.info)];
        }
        return envs;
      }
      case 'environment':
        return this.childrenOf(node);
      case 'releases':
      case 'drift':
        return node.getChildren();
      default:
        return [];
    }
  }

  getParent(node: EnvironmentTreeNode): EnvironmentTreeNode | undefined {
    if (node.kind === 'folder' || node.kind === 'message') return undefined;
    if (node.kind === 'environment') return this.sessions.multiRoot ? new EnvironmentFolderNode(node.session) : undefined;
    return node.parent;
  }

  private configOf(session: FolderSession, name: string) {
    const config = session.model.config;
    return config?.valid ? config.config.environments.find((e) => e.name === name) : undefined;
  }

  private environmentsOf(session: FolderSession): EnvironmentTreeNode[] {
    if (session.state === 'offline') return [];
    const config = session.model.config;
    if (!config) return [];
    const key = session.folder.uri.toString();
    if (!config.valid) {
      const n = config.diagnostics.length;
      return [
        new EnvironmentMessageNode(`${key}#invalid`, `conveyor.yml has ${n} problem${n === 1 ? '' : 's'}`, Icons.error, {
          title: 'Validate Config',
          command: Commands.validateConfig,
          arguments: [session.folder.uri.fsPath],
        }),
      ];
    }
    // The agent's list once loaded (the declared environments but preview templates, and the live
    // previews); conveyor.yml's before.
    const statuses = this.store.statuses(session);
    const names = statuses ? statuses.map((s) => s.name) : config.config.environments.filter((e) => !e.preview).map((e) => e.name);
    let nodes = this.envNodes.get(session);
    if (!nodes) {
      nodes = new Map();
      this.envNodes.set(session, nodes);
    }
    const keep = new Set(names);
    for (const name of nodes.keys()) if (!keep.has(name)) nodes.delete(name);
    return names.map((name) => {
      const status = statuses?.find((s) => s.name === name);
      const envConfig = config.config.environments.find((e) => e.name === name);
      let node = nodes!.get(name);
      if (!node) {
        node = new EnvironmentNode(session, name, envConfig, status);
        nodes!.set(name, node);
      } else {
        node.update(envConfig, status);
      }
      return node;
    });
  }

  private childrenOf(env: EnvironmentNode, now = Date.now()): EnvironmentTreeNode[] {
    const status = this.store.status(env.session, env.name);
    if (!status) return [];
    const out: EnvironmentTreeNode[] = [];
    if (status.live) out.push(new LiveReleaseNode(env, env.session, status as EnvironmentStatus & { live: Release }, now));
    if (status.sync && EnvironmentNode.hasDrift(status)) out.push(new DriftNode(env, env.session, status.sync));
    if (status.pendingApproval) out.push(new ApprovalNode(env, env.session, status.pendingApproval, now));
    if (status.current) out.push(new DeploymentNode(env, env.session, status.current, 0, status.queue.length, this.store.lastProgress(env.session, status.current.id), now));
    status.queue.forEach((d, i) => out.push(new DeploymentNode(env, env.session, d, i + 1, status.queue.length, undefined, now)));
    const releases = new ReleasesNode(env, env.session, status);
    if (releases.releases().length) out.push(releases);
    return out;
  }

  /** The environment node of a folder's environment, as last drawn. */
  environmentNode(session: FolderSession, name: string): EnvironmentNode | undefined {
    return this.envNodes.get(session)?.get(name);
  }

  /** What the view shows now, as plain data: for tests and for checks. */
  snapshot(): EnvironmentSnapshot[] {
    const walk = (nodes: EnvironmentTreeNode[]): EnvironmentSnapshot[] =>
      nodes.map((n) => {
        const item = this.getTreeItem(n);
        const tooltip = item.tooltip instanceof vscode.MarkdownString ? item.tooltip.value : (item.tooltip ?? '');
        return {
          kind: n.kind,
          label: typeof item.label === 'string' ? item.label : (item.label?.label ?? ''),
          description: typeof item.description === 'string' ? item.description : '',
          icon: item.iconPath instanceof vscode.ThemeIcon ? item.iconPath.id : undefined,
          // ThemeColor keeps its id at run time; the 1.90 typings do not declare it.
          iconColor: item.iconPath instanceof vscode.ThemeIcon ? (item.iconPath.color as { id?: string } | undefined)?.id : undefined,
          tooltip,
          contextValue: item.contextValue,
          children: walk(this.getChildren(n)),
        };
      });
    return walk(this.getChildren());
  }

  dispose(): void {
    clearInterval(this.clock);
    for (const sub of this.modelSubs.values()) sub.dispose();
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}

export interface EnvironmentSnapshot {
  kind: EnvironmentTreeNode['kind'];
  label: string;
  description: string;
  icon: string | undefined;
  iconColor: string | undefined;
  tooltip: string;
  contextValue: string | undefined;
  children: EnvironmentSnapshot[];
}
