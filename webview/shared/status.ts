/** Status words and the classes that colour them, for runs, stages, steps, deployments and tests. */

/** The class of a status: `st-succeeded`, `st-failed`, ... (theme.css colours them). */
export function statusClass(status: string): string {
  return `st st-${status.replace(/_/g, '-')}`;
}

/** "timed out", "rolled back". */
export function statusWord(status: string): string {
  return status.replace(/_/g, ' ');
}

/** "1 run", "3 runs". */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
