/**
 * Indentation slips: a key or a list entry indented by a number of spaces that lines up with
 * nothing above it. The YAML parser reports these as a generic error, often on another line;
 * this line-based reading names the line and the indentation it should have.
 *
 * It is only consulted when the parser has reported an error, so an unusual but valid layout
 * (a multi-line plain scalar, say) never turns into a complaint by itself.
 */

export interface IndentSlip {
  /** 1-based line of the slip. */
  line: number;
  /** 1-based columns of what to underline (the key, or the "-" of a list entry). */
  startColumn: number;
  endColumn: number;
  message: string;
  fix: string;
}

interface Level {
  indent: number;
  kind: 'key' | 'dash';
  line: number;
  label: string;
  /** The line ends the key with ":" (or is a bare "-"): its children are indented more. */
  opener: boolean;
  /** The value is a block scalar (`|` or `>`): more-indented lines are its text. */
  block: boolean;
}

const KEY = /^((?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"\-?:,[\]{}][^:#]*?|-[^\s:#][^:#]*?))\s*:(?:\s+(.*))?$/;

function stripComment(s: string): string {
  // A comment starts at " #" outside quotes; good enough for a value at the end of a line.
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]))) {
      return s.slice(0, i).trimEnd();
    }
  }
  return s.trimEnd();
}

function flowBalance(s: string): number {
  let n = 0;
  let quote: string | undefined;
  for (const c of s) {
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') n++;
    else if (c === ']' || c === '}') n--;
  }
  return n;
}

/** The levels a content line opens: a list entry's "-" and the key after it, or a key. */
function levelsOf(lineNo: number, indent: number, content: string): Level[] | undefined {
  const out: Level[] = [];
  let rest = content;
  let col = indent;
  while (rest === '-' || rest.startsWith('- ')) {
    const after = rest.slice(1);
    const spaces = after.length - after.trimStart().length;
    out.push({ indent: col, kind: 'dash', line: lineNo, label: '-', opener: after.trim() === '', block: false });
    col += 1 + spaces;
    rest = after.trimStart();
    if (rest === '') return out;
  }
  const m = KEY.exec(rest);
  if (m) {
    const value = (m[2] ?? '').trim();
    out.push({
      indent: col,
      kind: 'key',
      line: lineNo,
      label: m[1].replace(/^["']|["']$/g, ''),
      opener: value === '' || /^[&!][^\s]*$/.test(value),
      block: /^[|>][-+0-9]*$/.test(value),
    });
    return out;
  }
  if (out.length > 0) {
    // "- value": a scalar entry; a block scalar after "-" behaves like a key's.
    out[out.length - 1].block = /^[|>][-+0-9]*$/.test(rest);
    return out;
  }
  return undefined;
}

/** The first line whose indentation lines up with no open key or list entry above it. */
export function findIndentSlip(text: string): IndentSlip | undefined {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const stack: Level[] = [];
  let flowDepth = 0;
  let blockIndent: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (/^\s*(#.*)?$/.test(raw)) continue;
    if (/^(---|\.\.\.)(\s|$)/.test(raw) || raw.startsWith('%')) return undefined;
    const indent = raw.length - raw.replace(/^ +/, '').length;
    if (raw[indent] === '\t') return undefined;
    if (blockIndent !== undefined) {
      if (indent > blockIndent) continue;
      blockIndent = undefined;
    }
    const content = stripComment(raw.slice(indent));
    if (flowDepth > 0) {
      flowDepth += flowBalance(content);
      continue;
    }
    const levels = levelsOf(i + 1, indent, content);
    if (!levels) {
      // A scalar on its own line: a continuation of the value above, or a flow collection.
      flowDepth = Math.max(0, flowBalance(content));
      continue;
    }
    const first = levels[0];
    const top = stack[stack.length - 1];
    const child =
      top &&
      top.opener &&
      (indent > top.indent || (top.kind === 'key' && first.kind === 'dash' && indent === top.indent));
    if (!child) {
      const candidates = stack.filter((l) => l.kind === first.kind);
      while (stack.length > 0 && stack[stack.length - 1].indent > indent) stack.pop();
      let t = stack[stack.length - 1];
      if (t && t.indent === indent && t.kind === 'dash' && first.kind === 'key') {
        // A key after a list written at its parent key's indentation ("stages:" then "- a").
        stack.pop();
        t = stack[stack.length - 1];
      }
      if (t && t.indent === indent && t.kind === first.kind) {
        stack.pop();
      } else if (!(stack.length === 0 && indent === 0)) {
        const best = candidates
          .filter((l) => l.indent !== indent)
          .sort((a, b) => Math.abs(a.indent - indent) - Math.abs(b.indent - indent) || b.indent - a.indent)[0];
        if (!best) return undefined;
        const what = first.kind === 'key' ? `"${first.label}"` : 'this list entry';
        const like = best.kind === 'key' ? `"${best.label}"` : 'the "-"';
        const end = first.kind === 'key' ? indent + (KEY.exec(raw.slice(indent))?.[1].length ?? 1) : indent + 1;
        return {
          line: i + 1,
          startColumn: indent + 1,
          endColumn: end + 1,
          message: `${what} is indented by ${indent} space${indent === 1 ? '' : 's'}, which lines up with nothing above it`,
          fix: `indent it by ${best.indent} space${best.indent === 1 ? '' : 's'}, like ${like} on line ${best.line}`,
        };
      }
    }
    stack.push(...levels);
    const last = levels[levels.length - 1];
    if (last.block) blockIndent = last.indent;
    const value = content.slice(content.indexOf(':') + 1);
    flowDepth = Math.max(0, flowBalance(last.kind === 'key' ? value : content));
  }
  return undefined;
}
