import { toDisposable, type IDisposable } from './lifecycle';

/**
 * The disposables that are still open (a runtime's watches): each leaves the set when it is
 * disposed, and dispose() disposes those left.
 */
export class DisposableSet implements IDisposable {
  private readonly open = new Set<IDisposable>();

  /** Keeps `d` until it is disposed through the returned disposable, or with the set. */
  add(d: IDisposable): IDisposable {
    const kept = toDisposable(() => {
      this.open.delete(kept);
      d.dispose();
    });
    this.open.add(kept);
    return kept;
  }

  dispose(): void {
    for (const d of [...this.open]) d.dispose();
  }
}
