/**
 * Finding text in log lines, and cutting styled segments at the matches so that a view can mark
 * them. Case-insensitive, literal (no patterns). Pure: no DOM.
 */
import type { Segment } from './ansi';

/** A match: its line and the [start, end) of it in the line's text. */
export interface Match {
  line: number;
  start: number;
  end: number;
}

/** A segment, possibly a piece of one, inside a match or not. */
export interface MarkedSegment extends Segment {
  mark?: 'match' | 'current';
}

/** Every match of `query` in the lines, in order, up to `limit`. */
export function findMatches(lines: readonly string[], query: string, limit = 10_000): Match[] {
  const out: Match[] = [];
  const q = query.toLowerCase();
  if (!q) return out;
  for (let line = 0; line < lines.length && out.length < limit; line++) {
    const text = lines[line].toLowerCase();
    for (let at = text.indexOf(q); at !== -1 && out.length < limit; at = text.indexOf(q, at + q.length)) {
      out.push({ line, start: at, end: at + q.length });
    }
  }
  return out;
}

/**
 * A line's segments cut at the ranges, the pieces inside a range marked (`current` for the range
 * that is the current match). Ranges are in the line's text, sorted and not overlapping.
 */
export function markSegments(segments: readonly Segment[], ranges: readonly { start: number; end: number; current?: boolean }[]): MarkedSegment[] {
  if (ranges.length === 0) return segments.slice();
  const out: MarkedSegment[] = [];
  let offset = 0;
  let r = 0;
  for (const seg of segments) {
    const segEnd = offset + seg.text.length;
    let at = offset;
    while (at < segEnd) {
      while (r < ranges.length && ranges[r].end <= at) r++;
      const range = ranges[r];
      if (!range || range.start >= segEnd) {
        out.push({ ...seg, text: seg.text.slice(at - offset) });
        at = segEnd;
      } else if (range.start > at) {
        out.push({ ...seg, text: seg.text.slice(at - offset, range.start - offset) });
        at = range.start;
      } else {
        const end = Math.min(range.end, segEnd);
        out.push({ ...seg, text: seg.text.slice(at - offset, end - offset), mark: range.current ? 'current' : 'match' });
        at = end;
      }
    }
    offset = segEnd;
  }
  return out;
}
