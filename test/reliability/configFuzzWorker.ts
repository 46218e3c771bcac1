import { parentPort } from 'node:worker_threads';
import { analyzeConfigText } from '../../agent/config';
import type { Diagnostic } from '../../agent/protocol';

/** What the fuzz suite asks of one mutated conveyor.yml. */
export interface FuzzCase {
  id: number;
  text: string;
}

/** What the analysis of one case came to, and what is wrong with it, if anything. */
export interface FuzzVerdict {
  id: number;
  valid: boolean;
  errors: number;
  /** An internal failure: the analyzer threw (and said it could not analyze the config). */
  crashed: boolean;
  /** Rejections whose diagnostics lack a usable line and column, or a message. */
  unplaced: string[];
}

/** Checks one analysis: a rejection must say what is wrong and where, within the text. */
export function judge(c: FuzzCase): FuzzVerdict {
  const state = analyzeConfigText(c.text, 'conveyor.yml');
  const errors = state.diagnostics.filter((d) => d.severity === 'error');
  const lines = c.text.split('\n').map((l) => l.replace(/\r$/, ''));
  const unplaced: string[] = [];
  const place = (d: Diagnostic) => {
    const { line, column } = d.range.start;
    if (!Number.isInteger(line) || line < 1 || line > lines.length) return `line ${line} of ${lines.length}`;
    if (!Number.isInteger(column) || column < 1 || column > lines[line - 1].length + 1) return `column ${column} on a line of ${lines[line - 1].length}`;
    if (!d.message) return 'no message';
    return undefined;
  };
  for (const d of state.diagnostics) {
    const wrong = place(d);
    if (wrong) unplaced.push(`${d.code} "${d.message}": ${wrong}`);
  }
  if (!state.valid && errors.length === 0) unplaced.push('rejected without an error');
  return {
    id: c.id,
    valid: state.valid,
    errors: errors.length,
    crashed: state.diagnostics.some((d) => /could not be analyzed/.test(d.message)),
    unplaced,
  };
}

parentPort?.on('message', (c: FuzzCase) => parentPort!.postMessage(judge(c)));
