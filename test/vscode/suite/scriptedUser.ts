import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

/** A notification the scripted user was shown. */
export interface Shown {
  severity: 'info' | 'warning' | 'error';
  message: string;
  actions: string[];
  modal: boolean;
  detail: string | undefined;
}

/**
 * The user's side of the dialogs, scripted for a suite: functions of the VS Code API are replaced
 * (and put back by restore()); the notification functions record what was shown and answer with
 * the button `pressOn` picks (none: dismissed), as a person would.
 */
export class ScriptedUser {
  /** Every notification shown, in order. */
  readonly shown: Shown[] = [];
  /** The answer a notification gets (the button pressed); none: dismissed. */
  pressOn: (s: Shown) => string | undefined = () => undefined;
  private readonly originals: [object, string, unknown][] = [];

  /** Replaces `target[key]` with `fn` until restore(). */
  replace<T extends object>(target: T, key: keyof T & string, fn: unknown): void {
    this.originals.push([target, key, target[key]]);
    (target as Record<string, unknown>)[key] = fn;
    assert.equal((target as Record<string, unknown>)[key], fn, `${key} can be replaced for the suite`);
  }

  /** Replaces window.showInformationMessage, showWarningMessage and showErrorMessage. */
  answerNotifications(): void {
    const notify = (severity: Shown['severity']) =>
      (message: string, ...rest: unknown[]): Thenable<string | undefined> => {
        const options = rest[0] && typeof rest[0] === 'object' ? (rest[0] as vscode.MessageOptions) : undefined;
        const actions = rest.filter((r): r is string => typeof r === 'string');
        const s: Shown = { severity, message, actions, modal: !!options?.modal, detail: options?.detail };
        this.shown.push(s);
        const press = this.pressOn(s);
        return Promise.resolve(press && actions.includes(press) ? press : undefined);
      };
    this.replace(vscode.window, 'showInformationMessage', notify('info'));
    this.replace(vscode.window, 'showWarningMessage', notify('warning'));
    this.replace(vscode.window, 'showErrorMessage', notify('error'));
  }

  /** Puts back everything replaced, last first. */
  restore(): void {
    for (const [target, key, fn] of this.originals.splice(0).reverse()) (target as Record<string, unknown>)[key] = fn;
  }
}
