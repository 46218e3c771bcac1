/**
 * Durations as conveyor.yml writes them: a number of seconds (`45`, `0.5`) or a string of
 * number-unit parts (`90s`, `10m`, `1h30m`, `500ms`). The schema's pattern decides what is
 * accepted; this module turns an accepted value into milliseconds.
 */

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds of a duration string such as `1h30m`, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const part = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;
  let total = 0;
  let pos = 0;
  if (text.length === 0) return undefined;
  while (pos < text.length) {
    part.lastIndex = pos;
    const m = part.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]];
    pos = part.lastIndex;
  }
  return Math.round(total);
}

/** Milliseconds of a config duration: a number is seconds, a string is parsed. */
export function durationToMs(value: number | string): number | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  }
  return parseDuration(value);
}

const UNIT_WORDS: [RegExp, string][] = [
  [/^(?:ms|msecs?|millis(?:econds?)?|milliseconds?)$/i, 'ms'],
  [/^(?:h|hrs?|hours?)$/i, 'h'],
  [/^(?:m|mins?|minutes?)$/i, 'm'],
  [/^(?:s|secs?|seconds?)$/i, 's'],
];

/**
 * The accepted spelling of a duration written another way (`10 min` → `10m`,
 * `1 hour 30 minutes` → `1h30m`, `2H` → `2h`), or undefined when it cannot be read.
 */
export function suggestDuration(text: string): string | undefined {
  const parts = /(\d+(?:\.\d+)?)\s*([A-Za-z]+)[\s,]*/g;
  let out = '';
  let pos = 0;
  const trimmed = text.trim().replace(/\s+and\s+/gi, ' ');
  if (trimmed.length === 0) return undefined;
  for (let m = parts.exec(trimmed); m; m = parts.exec(trimmed)) {
    if (m.index !== pos) return undefined;
    const unit = UNIT_WORDS.find(([re]) => re.test(m[2]));
    if (!unit) return undefined;
    out += m[1] + unit[1];
    pos = parts.lastIndex;
  }
  if (pos !== trimmed.length || out === text) return undefined;
  return parseDuration(out) === undefined ? undefined : out;
}
