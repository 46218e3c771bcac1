import * as vscode from 'vscode';
import { Commands } from '../../constants';
import type { FolderSession } from '../../session/folderSession';
import type { SessionManager } from '../../session/sessionManager';
import { Icons } from '../icons';
import { RefreshScheduler } from '../refreshScheduler';
import { EnvironmentFolderNode, EnvironmentMessageNode, EnvironmentNode, type EnvironmentTreeNode } from './environmentNode';

/** The Environments view: what conveyor.yml declares (GET /api/config, then config.changed events). */
export class EnvironmentsProvider implements vscode.TreeDataProvider<EnvironmentTreeNode>, vscode.Disposable {
  private readonly _onDidChangeTreeData = new vscode.EventEmitter<EnvironmentTreeNode | EnvironmentTreeNode[] | undefined>();
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;
  private readonly scheduler = new RefreshScheduler<EnvironmentTreeNode>(this._onDidChangeTreeData);
  private readonly modelSubs = new Map<FolderSession, vscode.Disposable>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly sessions: SessionManager) {
    this.disposables.push(
      this._onDidChangeTreeData,
      this.scheduler,
      sessions.onDidChangeSessions(() => this.sync()),
      sessions.onDidChangeState(() => this.scheduler.schedule()),
    );
    this.sync();
  }

  private sync(): void {
    const live = new Set(this.sessions.list());
    for (const [s, sub] of this.modelSubs) {
      if (!live.has(s)) {
        sub.dispose();
        this.modelSubs.delete(s);
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

  getTreeItem(node: EnvironmentTreeNode): vscode.TreeItem {
    return node;
  }

  getChildren(node?: EnvironmentTreeNode): EnvironmentTreeNode[] {
    if (!node) {
      const all = this.sessions.list();
      if (all.length === 1) return this.environmentsOf(all[0]);
      return all.map((s) => new EnvironmentFolderNode(s));
    }
    if (node.kind !== 'folder') return [];
    const envs = this.environmentsOf(node.session);
    // Several folders: each says what it has; one folder leaves an empty view to the welcome text.
    if (envs.length === 0) {
      const s = node.session;
      const label = s.state === 'offline' ? 'Agent not running' : s.model.config ? 'No environments in conveyor.yml' : 'Connecting to the agent…';
      return [new EnvironmentMessageNode(`${s.folder.uri.toString()}#no-env`, label, Icons.info)];
    }
    return envs;
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
    return config.config.environments.map((env) => new EnvironmentNode(session, env));
  }

  dispose(): void {
    for (const sub of this.modelSubs.values()) sub.dispose();
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}
