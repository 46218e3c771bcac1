import * as fs from 'node:fs';
import { FULL } from './mode';

/** One measured figure of a reliability suite, with its target when it has one. */
export interface Figure {
  /** The suite: Crash, Reconnect, Config fuzz, ... */
  suite: string;
  /** What was counted or measured: "runs left running after restart". */
  measure: string;
  value: number | string;
  /** The target, as people read it: "0", "flat"; absent for figures that only inform. */
  target?: string;
  /** Whether the value meets the target; absent when there is no target. */
  ok?: boolean;
}

/** Where `npm run reliability` collects the figures: one JSON object per line. */
const FIGURES_FILE_ENV = 'CONVEYOR_RELIABILITY_FIGURES';

/**
 * Prints a suite's figures and, under `npm run reliability`, appends them to the figures file
 * that scripts/reliability.js turns into the Reliability table. Called before the suite asserts,
 * so a failing target still shows its figure.
 */
export function recordFigures(figures: Figure[]): void {
  const mode = FULL ? 'full' : 'short';
  for (const f of figures) {
    const target = f.target === undefined ? '' : ` (target ${f.target}${f.ok === false ? ': MISSED' : ''})`;
    console.log(`      [${f.suite}, ${mode}] ${f.measure}: ${typeof f.value === 'number' ? formatNumber(f.value) : f.value}${target}`);
  }
  const file = process.env[FIGURES_FILE_ENV];
  if (file) fs.appendFileSync(file, figures.map((f) => JSON.stringify({ ...f, mode }) + '\n').join(''));
}

/** A count of things that must not happen: its figure, with target 0. */
export function zero(suite: string, measure: string, value: number): Figure {
  return { suite, measure, value, target: '0', ok: value === 0 };
}

/** A figure that only informs. */
export function info(suite: string, measure: string, value: number | string): Figure {
  return { suite, measure, value };
}

function formatNumber(n: number): string {
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toLocaleString('en-US', { maximumFractionDigits: 2 });
}
