/**
 * How hard the reliability suites push. `npm test` runs them short; `npm run reliability` sets
 * CONVEYOR_RELIABILITY=full and runs them at full size. CONVEYOR_RELIABILITY_SEED replays a run.
 */
export const FULL: boolean = process.env.CONVEYOR_RELIABILITY === 'full';

/** The short-mode figure in `npm test`, the full one under `npm run reliability`. */
export function scaled<T>(short: T, full: T): T {
  return FULL ? full : short;
}

/**
 * The seed of a suite's random choices: CONVEYOR_RELIABILITY_SEED when set, else a fixed one in
 * short mode (the same cases every `npm test`) and a new one in full mode (new cases each time).
 */
export function seedOf(suite: string): number {
  const given = process.env.CONVEYOR_RELIABILITY_SEED;
  if (given !== undefined && /^\d+$/.test(given)) return Number(given) >>> 0;
  if (FULL) return (Date.now() ^ (process.pid << 8)) >>> 0;
  let h = 2166136261;
  for (const c of suite) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return h >>> 0;
}

/** A seeded random source with the few draws the suites need. */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** mulberry32: uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A whole number from min to max, both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}
