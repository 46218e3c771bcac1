import * as vscode from 'vscode';
import type { FolderNode } from './folderNode';

/** A line of text in place of data: "agent offline", "conveyor.yml has problems". */
export class MessageNode extends vscode.TreeItem {
  readonly kind = 'message' as const;

  constructor(
    readonly parent: FolderNode | undefined,
    id: string,
    label: string,
    opts: { icon?: vscode.ThemeIcon; command?: vscode.Command; tooltip?: string; description?: string } = {},
  ) {
    super(label, vscode.TreeItemCollapsibleState.None);
    this.id = id;
    this.iconPath = opts.icon;
    this.command = opts.command;
    this.tooltip = opts.tooltip;
    this.description = opts.description;
    this.contextValue = 'message';
  }

  getChildren(): [] {
    return [];
  }
}
