import * as vscode from 'vscode';
import type { EnvironmentConfig } from '../../../agent/protocol';
import type { FolderSession } from '../../session/folderSession';
import { Icons } from '../icons';

/** An environment conveyor.yml declares: runtime and promotion mode. */
export class EnvironmentNode extends vscode.TreeItem {
  readonly kind = 'environment' as const;

  constructor(
    readonly session: FolderSession,
    readonly env: EnvironmentConfig,
  ) {
    super(env.name, vscode.TreeItemCollapsibleState.None);
    this.id = `${session.folder.uri.toString()}#env-${env.name}`;
    this.description = `${env.runtime} · ${env.promotion === 'auto' ? 'auto promotion' : 'manual promotion'}`;
    this.iconPath = Icons.environment;
    const md = new vscode.MarkdownString(`**${env.name}**\n\nruntime: \`${env.runtime}\`  \npromotion: \`${env.promotion}\``);
    const settings = Object.keys(env.settings);
    if (settings.length) md.appendCodeblock(JSON.stringify(env.settings, null, 2), 'json');
    this.tooltip = md;
    this.contextValue = `environment runtime:${env.runtime} promotion:${env.promotion}`;
    this.accessibilityInformation = { label: `Environment ${env.name}: runtime ${env.runtime}, ${env.promotion} promotion` };
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

export type EnvironmentTreeNode = EnvironmentNode | EnvironmentFolderNode | EnvironmentMessageNode;
