/**
 * Disposables and events, after VS Code's `base/common/lifecycle` and `event`: everything
 * long-lived can be disposed, and whoever creates a disposable registers it.
 */

export interface IDisposable {
  dispose(): void;
}

export function toDisposable(fn: () => void): IDisposable {
  let done = false;
  return {
    dispose() {
      if (!done) {
        done = true;
        fn();
      }
    },
  };
}

/** A bag of disposables, disposed together, last in first out. */
export class DisposableStore implements IDisposable {
  private readonly items: IDisposable[] = [];
  private disposed = false;

  add<T extends IDisposable>(d: T): T {
    if (this.disposed) {
      d.dispose();
    } else {
      this.items.push(d);
    }
    return d;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const d of this.items.splice(0).reverse()) {
      try {
        d.dispose();
      } catch (err) {
        reportUnexpected(err);
      }
    }
  }
}

/** Base class whose `_register` ties a child's life to this object's. */
export abstract class Disposable implements IDisposable {
  protected readonly _store = new DisposableStore();
  protected _register<T extends IDisposable>(d: T): T {
    return this._store.add(d);
  }
  dispose(): void {
    this._store.dispose();
  }
}

/** An event is a function: pass a listener, get a disposable that removes it. */
export type Event<T> = (listener: (e: T) => void) => IDisposable;

/**
 * Keep the emitter private and expose `emitter.event` as `onDidX`. A throwing listener is
 * reported and does not stop the others.
 */
export class Emitter<T> implements IDisposable {
  private listeners = new Set<(e: T) => void>();

  readonly event: Event<T> = (listener) => {
    this.listeners.add(listener);
    return toDisposable(() => this.listeners.delete(listener));
  };

  fire(e: T): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        reportUnexpected(err);
      }
    }
  }

  get hasListeners(): boolean {
    return this.listeners.size > 0;
  }

  dispose(): void {
    this.listeners.clear();
  }
}

let unexpectedHandler: (err: unknown) => void = (err) => {
  console.error('[conveyor] unexpected error:', err);
};

/** Where listener errors and other bugs go; the agent points it at its log. */
export function setUnexpectedErrorHandler(fn: (err: unknown) => void): void {
  unexpectedHandler = fn;
}

export function reportUnexpected(err: unknown): void {
  unexpectedHandler(err);
}

/** For exhaustive switches over closed unions. */
export function unreachable(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}

/** A promise with its resolve function outside, to signal between tasks. */
export class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (v: T) => void;
  settled = false;
  constructor() {
    this.promise = new Promise<T>((res) => {
      this.resolve = (v: T) => {
        this.settled = true;
        res(v);
      };
    });
  }
}

/** Expected failures are values. */
export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };
export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const err = <E>(error: E): { ok: false; error: E } => ({ ok: false, error });
