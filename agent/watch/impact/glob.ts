/**
 * Globs of workspace-relative, forward-slash paths: the `watch.include`, `watch.exclude` and
 * `watch.tests` lists of conveyor.yml.
 *
 * The syntax is the usual one: `*` and `?` stay inside one path segment, `**` as a whole segment
 * spans any number of them (none included, so `dist/**` also matches `dist` itself, which lets a
 * watcher skip an excluded folder without reading it), `[abc]` and `[!abc]` are classes, `{a,b}`
 * are alternatives, and a backslash escapes. Dot files match like any other: the default include,
 * every file, covers `.mocharc.json`. A pattern holds from the workspace root: `*.md` is the
 * root's Markdown files only; with a leading `**` segment it is all of them.
 */

/** Most alternatives one pattern may expand to (`{a,b}{c,d}...`); the rest are dropped. */
const MAX_EXPANSIONS = 256;

/** A compiled list of globs: a path matches when any of them does. */
export class GlobSet {
  private readonly regexes: RegExp[];

  constructor(readonly patterns: readonly string[]) {
    this.regexes = patterns.flatMap((p) => expandBraces(normalizePattern(p)).map(compileGlob));
  }

  get isEmpty(): boolean {
    return this.regexes.length === 0;
  }

  /** `path`: relative to the workspace, forward slashes, no leading `./`. */
  matches(path: string): boolean {
    for (const re of this.regexes) if (re.test(path)) return true;
    return false;
  }
}

function normalizePattern(p: string): string {
  let s = p.trim();
  while (s.startsWith('./')) s = s.slice(2);
  if (s.startsWith('/')) s = s.slice(1);
  return s;
}

/** `a{b,c{d,e}}f` to `abf`, `acdf`, `acef`. An unbalanced brace is literal. */
export function expandBraces(pattern: string): string[] {
  const open = findBrace(pattern);
  if (!open) return [pattern];
  const { start, end, parts } = open;
  const head = pattern.slice(0, start);
  const tails = expandBraces(pattern.slice(end + 1));
  const out: string[] = [];
  for (const part of parts) {
    for (const mid of expandBraces(part)) {
      for (const tail of tails) {
        out.push(head + mid + tail);
        if (out.length >= MAX_EXPANSIONS) return out;
      }
    }
  }
  return out;
}

/** The first top-level `{...}` with at least one comma, split at its top-level commas. */
function findBrace(p: string): { start: number; end: number; parts: string[] } | undefined {
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c !== '{') continue;
    let depth = 0;
    const parts: string[] = [];
    let from = i + 1;
    for (let j = i; j < p.length; j++) {
      const d = p[j];
      if (d === '\\') {
        j++;
      } else if (d === '{') {
        depth++;
      } else if (d === '}') {
        depth--;
        if (depth === 0) {
          parts.push(p.slice(from, j));
          if (parts.length > 1) return { start: i, end: j, parts };
          break;
        }
      } else if (d === ',' && depth === 1) {
        parts.push(p.slice(from, j));
        from = j + 1;
      }
    }
  }
  return undefined;
}

/** One brace-free glob to an anchored regular expression. */
export function compileGlob(pattern: string): RegExp {
  const segments = pattern.split('/');
  let re = '';
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const first = i === 0;
    const last = i === segments.length - 1;
    if (seg === '**') {
      // Zero or more whole segments, with the slashes around them.
      if (first && last) re += '.*';
      else if (first) re += '(?:.*/)?';
      else if (last) re += '(?:/.*)?';
      else re += '/(?:.*/)?';
      continue;
    }
    if (!first && segments[i - 1] !== '**') re += '/';
    re += compileSegment(seg);
  }
  return new RegExp(`^${re}$`);
}

function compileSegment(seg: string): string {
  let out = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === '\\' && i + 1 < seg.length) {
      out += escapeRegex(seg[++i]);
    } else if (c === '*') {
      while (seg[i + 1] === '*') i++;
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = seg.indexOf(']', i + 2);
      if (close === -1) {
        out += '\\[';
        continue;
      }
      let body = seg.slice(i + 1, close);
      let negate = false;
      if (body[0] === '!' || body[0] === '^') {
        negate = true;
        body = body.slice(1);
      }
      // Inside a class only `\`, `]` and `^` need care; ranges (a-z) pass through.
      body = body.replace(/[\\\]^]/g, (m) => `\\${m}`);
      out += negate ? `[^/${body}]` : `[${body}]`;
      i = close;
    } else {
      out += escapeRegex(c);
    }
  }
  return out;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
