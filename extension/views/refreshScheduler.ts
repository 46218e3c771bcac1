import * as vscode from 'vscode';

/**
 * Coalesces tree refreshes: whatever changes within one interval becomes one
 * onDidChangeTreeData event (the changed nodes, or everything), so an event storm costs at
 * most 1000 / intervalMs refreshes a second.
 */
export class RefreshScheduler<T> implements vscode.Disposable {
  private readonly nodes = new Set<T>();
  private all = false;
  private timer: NodeJS.Timeout | undefined;
  private lastFlush = 0;
  /** How many refreshes were fired (tests read it). */
  fired = 0;

  constructor(
    private readonly emitter: vscode.EventEmitter<T | T[] | undefined>,
    private readonly intervalMs = 100,
  ) {}

  /** Refresh these nodes (or, without any, the whole tree) soon. */
  schedule(nodes?: Iterable<T>): void {
    if (nodes === undefined) this.all = true;
    else for (const n of nodes) this.nodes.add(n);
    if (this.timer || (!this.all && this.nodes.size === 0)) return;
    const wait = Math.max(0, this.lastFlush + this.intervalMs - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.timer = undefined;
    this.lastFlush = Date.now();
    const all = this.all;
    const nodes = [...this.nodes];
    this.all = false;
    this.nodes.clear();
    this.fired++;
    this.emitter.fire(all ? undefined : nodes);
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}
