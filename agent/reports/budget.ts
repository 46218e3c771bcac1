/**
 * A bound on the text a report records. Every result is kept (suite, name, status, duration,
 * location); what a huge report loses is the length of its messages: once the results' text
 * (message, stack, expected, actual) has spent the budget, each later result keeps only the
 * first `short` characters of each. Failures spend the budget first, in report order, then the
 * skipped and passed results, so failures keep the most of their messages.
 */
import type { TestResult } from '../protocol';

export interface MessageBudget {
  /** Characters of text kept in full, over all the results of one report. */
  chars: number;
  /** What each text of a result past the budget keeps, in characters. */
  short: number;
  /** Each text is cut to this length anyway (so only that much of it is counted). */
  field: number;
}

const TEXTS = ['message', 'stack', 'expected', 'actual'] as const;

/**
 * Shortens, in place, the texts of the results past the budget. Answers how many results were
 * shortened (0: the report fits).
 */
export function shortenMessages(results: TestResult[], budget: MessageBudget): number {
  let left = budget.chars;
  let shortened = 0;
  const spend = (r: TestResult, i: number) => {
    let cost = 0;
    for (const k of TEXTS) cost += Math.min(r[k]?.length ?? 0, budget.field);
    if (cost <= left) {
      left -= cost;
      return;
    }
    // Once one result does not fit, the budget counts as spent: later small ones are cut too,
    // so what is cut is a tail of the report, not a scattering.
    left = 0;
    let cut = false;
    const out: TestResult = { ...r };
    for (const k of TEXTS) {
      const s = r[k];
      if (s !== null && s.length > budget.short) {
        out[k] = `${s.slice(0, budget.short)}…`;
        cut = true;
      }
    }
    if (cut) {
      results[i] = out;
      shortened++;
    }
  };
  results.forEach((r, i) => r.status === 'failed' && spend(r, i));
  results.forEach((r, i) => r.status !== 'failed' && spend(r, i));
  return shortened;
}
