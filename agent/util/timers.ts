import { setTimeout as delay } from 'node:timers/promises';
import { reportUnexpected, type IDisposable } from './lifecycle';

/** Waits `ms`; an abort of `signal` (before or during the wait) ends it early. Never rejects. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (e) {
    if (!signal?.aborted) throw e;
  }
}

/**
 * Runs `fn` once a burst of `trigger()` calls has been quiet for `delayMs` (which may change
 * between bursts). A throwing `fn` is reported; nothing runs after dispose().
 */
export class Debouncer implements IDisposable {
  private timer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    private readonly fn: () => void,
    public delayMs: number,
  ) {}

  trigger(): void {
    if (this.disposed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.disposed) return;
      try {
        this.fn();
      } catch (e) {
        reportUnexpected(e);
      }
    }, this.delayMs);
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
  }
}

/**
 * Retries with exponential back-off: `schedule()` runs `attempt` after the current delay
 * (`firstMs`, doubled at each retry up to `maxMs`) unless a retry is pending already; `reset()`
 * after a success starts again from `firstMs`. Nothing runs after dispose().
 */
export class Backoff implements IDisposable {
  private timer: NodeJS.Timeout | undefined;
  private delayMs: number;
  private disposed = false;

  constructor(
    private readonly attempt: () => void,
    private readonly firstMs = 250,
    private readonly maxMs = 5000,
  ) {
    this.delayMs = firstMs;
  }

  schedule(): void {
    if (this.disposed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.attempt();
    }, this.delayMs);
    this.delayMs = Math.min(this.delayMs * 2, this.maxMs);
  }

  reset(): void {
    this.delayMs = this.firstMs;
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
  }
}
