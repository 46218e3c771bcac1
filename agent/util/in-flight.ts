/** Counts the operations in flight per key (an environment's applies), for "is one running now?". */
export class InFlight {
  private readonly counts = new Map<string, number>();

  /** Counts one more operation on `key`; call the returned function once, when it ends. */
  begin(key: string): () => void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    return () => {
      const n = (this.counts.get(key) ?? 1) - 1;
      if (n > 0) this.counts.set(key, n);
      else this.counts.delete(key);
    };
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }
}
