import * as vscode from 'vscode';
import { Commands } from '../../constants';
import type { ModelChange } from '../../model/runModel';
import type { FolderSession } from '../../session/folderSession';
import type { SessionManager } from '../../session/sessionManager';
import { Icons } from '../icons';
import { RefreshScheduler } from '../refreshScheduler';
import { FolderNode } from './folderNode';
import { MessageNode } from './messageNode';
import type { PipelineNode } from './nodes';
import { RunNode } from './runNode';

/** Relative times ("3 min ago") are redrawn this often. */
const CLOCK_MS = 30_000;

/**
 * The Pipelines view: runs newest first (per folder when several have a conveyor.yml), their
 * stages and steps. Nodes are kept per run and updated in place; model changes are coalesced
 * into at most ten refreshes a second, of the changed runs only when the list itself is unchanged.
 */
export class PipelinesProvider implements vscode.TreeDataProvider<PipelineNode>, vscode.Disposable {
  private readonly _onDidChangeTreeData = new vscode.EventEmitter<PipelineNode | PipelineNode[] | undefined>();
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;
  readonly scheduler = new RefreshScheduler<PipelineNode>(this._onDidChangeTreeData);
  private readonly folderNodes = new Map<FolderSession, FolderNode>();
  private readonly runNodes = new Map<FolderSession, Map<number, RunNode>>();
  private readonly modelSubs = new Map<FolderSession, vscode.Disposable>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly clock: NodeJS.Timeout;
  private multiRoot = false;

  constructor(private readonly sessions: SessionManager) {
    this.disposables.push(
      this._onDidChangeTreeData,
      this.scheduler,
      sessions.onDidChangeSessions(() => {
        this.syncSessions();
        this.scheduler.schedule();
      }),
      sessions.onDidChangeState((s) => this.scheduler.schedule(this.sessions.multiRoot ? [this.folderNode(s)] : undefined)),
    );
    this.syncSessions();
    this.clock = setInterval(() => this.scheduler.schedule(), CLOCK_MS);
  }

  private syncSessions(): void {
    const live = new Set(this.sessions.list());
    // One folder or several: run nodes hang from the root or from folder nodes, so they are made anew.
    if (this.sessions.multiRoot !== this.multiRoot) {
      this.multiRoot = this.sessions.multiRoot;
      this.runNodes.clear();
    }
    for (const [s, sub] of this.modelSubs) {
      if (live.has(s)) continue;
      sub.dispose();
      this.modelSubs.delete(s);
      this.runNodes.delete(s);
      this.folderNodes.delete(s);
    }
    for (const s of live) {
      if (!this.modelSubs.has(s)) this.modelSubs.set(s, s.model.onDidChange((c) => this.onModelChange(s, c)));
    }
  }

  private onModelChange(session: FolderSession, change: ModelChange): void {
    if (change.listChanged) {
      this.scheduler.schedule(this.sessions.multiRoot ? [this.folderNode(session)] : undefined);
      return;
    }
    const nodes = this.runNodes.get(session);
    const changed = [...change.runs].map((id) => nodes?.get(id)).filter((n): n is RunNode => !!n);
    if (changed.length) this.scheduler.schedule(changed);
  }

  getTreeItem(node: PipelineNode): vscode.TreeItem {
    return node.kind === 'message' ? node : node.refresh();
  }

  getChildren(node?: PipelineNode): PipelineNode[] | Promise<PipelineNode[]> {
    if (!node) {
      const all = this.sessions.list();
      if (all.length === 0) return [];
      if (all.length === 1) return this.runsOf(all[0], undefined);
      return all.map((s) => this.folderNode(s));
    }
    switch (node.kind) {
      case 'folder':
        return this.runsOf(node.session, node);
      case 'run':
      case 'stage':
        return node.getChildren();
      case 'step':
      case 'message':
        return [];
    }
  }

  getParent(node: PipelineNode): PipelineNode | undefined {
    return node.parent;
  }

  private folderNode(session: FolderSession): FolderNode {
    let node = this.folderNodes.get(session);
    if (!node) {
      node = new FolderNode(session);
      this.folderNodes.set(session, node);
    }
    return node;
  }

  private runsOf(session: FolderSession, parent: FolderNode | undefined): PipelineNode[] {
    const key = session.folder.uri.toString();
    if (session.state === 'offline') {
      // One folder: the welcome view explains and offers Start Agent. Several: a line per folder.
      if (!parent) return [];
      return [
        new MessageNode(parent, `${key}#offline`, 'Agent not running: start it', {
          icon: Icons.offline,
          description: session.offlineReason,
          command: { title: 'Start Agent', command: Commands.startAgent, arguments: [session.folder.uri.fsPath] },
        }),
      ];
    }
    const runs = session.model.list();
    if (runs.length === 0 && parent) {
      return [new MessageNode(parent, `${key}#empty`, session.state === 'connected' ? 'No runs yet' : 'Connecting to the agent…', { icon: Icons.info })];
    }
    let nodes = this.runNodes.get(session);
    if (!nodes) {
      nodes = new Map();
      this.runNodes.set(session, nodes);
    }
    const newest = runs[0]?.summary.id;
    const keep = new Set(runs.map((r) => r.summary.id));
    for (const id of nodes.keys()) if (!keep.has(id)) nodes.delete(id);
    return runs.map((r) => {
      const id = r.summary.id;
      let node = nodes!.get(id);
      if (!node) {
        node = new RunNode(parent, session, id, id === newest);
        nodes!.set(id, node);
      }
      return node;
    });
  }

  /** The node of a run, creating the view's nodes down to it (for reveal). */
  runNode(session: FolderSession, runId: number): RunNode | undefined {
    const existing = this.runNodes.get(session)?.get(runId);
    if (existing) return existing;
    this.runsOf(session, this.sessions.multiRoot ? this.folderNode(session) : undefined);
    return this.runNodes.get(session)?.get(runId);
  }

  /** What the view shows now, as plain data: for tests and for checks. */
  async snapshot(): Promise<TreeSnapshot[]> {
    const walk = async (nodes: PipelineNode[]): Promise<TreeSnapshot[]> => {
      const out: TreeSnapshot[] = [];
      for (const n of nodes) {
        const item = this.getTreeItem(n);
        const children = n.kind === 'run' || n.kind === 'stage' || n.kind === 'folder' ? await walk(await this.getChildren(n)) : [];
        out.push({
          kind: n.kind,
          label: typeof item.label === 'string' ? item.label : item.label?.label ?? '',
          description: typeof item.description === 'string' ? item.description : '',
          icon: item.iconPath instanceof vscode.ThemeIcon ? item.iconPath.id : undefined,
          contextValue: item.contextValue,
          children,
        });
      }
      return out;
    };
    return walk(await this.getChildren());
  }

  dispose(): void {
    clearInterval(this.clock);
    for (const sub of this.modelSubs.values()) sub.dispose();
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}

export interface TreeSnapshot {
  kind: PipelineNode['kind'];
  label: string;
  description: string;
  icon: string | undefined;
  contextValue: string | undefined;
  children: TreeSnapshot[];
}
