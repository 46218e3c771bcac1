import * as vscode from 'vscode';
import { LogTerminal, logTargetKey, logTerminalName, type LogTarget } from './logTerminal';

/** The open log terminals, one per stage or step: showing one again brings it forward. */
export class LogTerminals implements vscode.Disposable {
  private readonly open = new Map<string, { terminal: vscode.Terminal; pty: LogTerminal }>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly log: vscode.LogOutputChannel) {
    this.disposables.push(
      vscode.window.onDidCloseTerminal((t) => {
        for (const [key, entry] of this.open) {
          if (entry.terminal === t) {
            entry.pty.dispose();
            this.open.delete(key);
          }
        }
      }),
    );
  }

  show(target: LogTarget, preserveFocus = false): LogTerminal {
    const key = logTargetKey(target);
    const existing = this.open.get(key);
    if (existing) {
      existing.terminal.show(preserveFocus);
      return existing.pty;
    }
    const pty = new LogTerminal(target, this.log);
    const terminal = vscode.window.createTerminal({ name: logTerminalName(target), pty, iconPath: new vscode.ThemeIcon('output'), isTransient: true });
    this.open.set(key, { terminal, pty });
    terminal.show(preserveFocus);
    return pty;
  }

  /** The terminal showing this target, if one is open. */
  get(target: LogTarget): LogTerminal | undefined {
    return this.open.get(logTargetKey(target))?.pty;
  }

  dispose(): void {
    for (const { terminal, pty } of this.open.values()) {
      pty.dispose();
      terminal.dispose();
    }
    this.open.clear();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
