import * as vscode from 'vscode';

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A promise with its resolve function outside, for one-shot signals. */
export class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  settled = false;
  constructor() {
    this.promise = new Promise<T>((resolve) => {
      this.resolve = (value: T) => {
        this.settled = true;
        resolve(value);
      };
    });
  }
}

/**
 * A level-triggered wake-up: `wait()` resolves at the next `fire()` (or at once if one came
 * since the last wait). Loops that sleep until something changes use it.
 */
export class Signal {
  private pending = false;
  private waiters: (() => void)[] = [];

  fire(): void {
    const waiters = this.waiters.splice(0);
    if (waiters.length === 0) this.pending = true;
    for (const w of waiters) w();
  }

  wait(signal?: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

/** Resolves with the first value `event` fires that satisfies `test`, or undefined after `timeoutMs`. */
export function waitForEvent<T>(event: vscode.Event<T>, test: (value: T) => boolean, timeoutMs: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      sub.dispose();
      resolve(undefined);
    }, timeoutMs);
    const sub = event((value) => {
      if (!test(value)) return;
      clearTimeout(timer);
      sub.dispose();
      resolve(value);
    });
  });
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
