import * as vscode from 'vscode';
import type { FolderSession } from '../../session/folderSession';
import { Icons } from '../icons';

/** A workspace folder, when several have a conveyor.yml: its runs below. */
export class FolderNode extends vscode.TreeItem {
  readonly kind = 'folder' as const;
  readonly parent = undefined;

  constructor(readonly session: FolderSession) {
    super(session.folder.name, vscode.TreeItemCollapsibleState.Expanded);
    this.id = `folder:${session.folder.uri.toString()}`;
  }

  refresh(): this {
    const s = this.session;
    this.iconPath = Icons.folder;
    this.description = s.state === 'connected' ? undefined : s.state === 'offline' ? `agent offline` : s.state === 'reconnecting' ? 'reconnecting…' : 'starting…';
    this.tooltip = s.folder.uri.fsPath;
    this.contextValue = `folder agent:${s.state}`;
    this.accessibilityInformation = { label: `Folder ${s.folder.name}: agent ${s.state}` };
    return this;
  }
}
