/**
 * "Did you mean" suggestions: the closest known word to what was written.
 */

/** Levenshtein distance between two strings (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** Lower case without separators: `max_parallel`, `Max-Parallel` and `maxParallel` compare equal. */
function fold(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, '');
}

/**
 * The candidate closest to `word`, or undefined when none is close enough. Close means:
 * equal ignoring case and separators, or one is a prefix of the other (at least 2 characters),
 * or at most 2 edits apart (at most 1 for words of 3 characters or fewer).
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  if (word.length === 0) return undefined;
  let best: string | undefined;
  let bestScore = Infinity;
  const w = fold(word);
  for (const c of candidates) {
    if (c === word) continue;
    const f = fold(c);
    let score: number;
    if (f === w) {
      score = 0;
    } else {
      const d = editDistance(w, f);
      const limit = Math.min(2, Math.floor(Math.max(w.length, f.length) / 2));
      if (d <= limit) {
        score = d;
      } else if (w.length >= 2 && f.length >= 2 && (f.startsWith(w) || w.startsWith(f))) {
        score = 2.5 + Math.abs(f.length - w.length) / 100;
      } else {
        continue;
      }
    }
    if (score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Spellings of `value` that a user may have meant when it fails `pattern`: trimmed, spaces as
 * dashes or underscores or removed, lower case, other characters as dashes or underscores.
 * The first that matches wins.
 */
export function repairToPattern(value: string, pattern: RegExp): string | undefined {
  const trimmed = value.trim();
  const candidates = [
    trimmed,
    trimmed.replace(/\s+/g, '-'),
    trimmed.replace(/\s+/g, '_'),
    trimmed.replace(/\s+/g, ''),
    trimmed.toLowerCase(),
    trimmed.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[-_.]+/, '').replace(/-+$/, ''),
    trimmed.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+(?=[0-9])/, ''),
  ];
  for (const c of candidates) {
    if (c !== value && c.length > 0 && pattern.test(c)) return c;
  }
  return undefined;
}
