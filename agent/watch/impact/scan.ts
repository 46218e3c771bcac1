/**
 * Finds the modules a JS or TS file imports, without parsing it: a tolerant one-pass scanner
 * that knows comments, strings, template literals (with nested `${}`) and regular expression
 * literals well enough to skip them, and looks for these shapes in what is left:
 *
 *   import x, { y } from 'a'      import type { T } from 'a'     import 'a'
 *   export * from 'a'             export { y as z } from 'a'     export type * from 'a'
 *   require('a')                  import('a')                    import x = require('a')
 *
 * Only string literals count (`require(name)` and `import(\`./${x}\`)` are not knowable). The
 * scanner never throws and always ends: TypeScript annotations, JSX, a half-typed line or a
 * binary file just yield fewer imports. A quote or regex that does not close by the end of its
 * line is abandoned there, so one stray apostrophe (JSX text) cannot hide the rest of the file.
 */

export type ImportKind = 'import' | 'export' | 'side-effect' | 'require' | 'dynamic';

export interface ImportRef {
  /** The specifier as written: `./util`, `lodash/fp`, `@app/x`. */
  specifier: string;
  kind: ImportKind;
}

// Token kinds.
const NONE = 0;
const IDENT = 1;
const STRING = 2; // also a template literal without substitutions
const TEMPLATE = 3; // a template literal with substitutions, or a piece of one
const NUMBER = 4;
const REGEX = 5;
const PUNCT = 6;

// Matcher states: where we are in one of the shapes above.
const M_NONE = 0;
const M_IMPORT = 1; // after `import`
const M_EXPORT = 2; // after `export`
const M_CLAUSE = 3; // in `x, { y as z }` or `* as ns`
const M_AFTER_BRACE = 4; // after the clause's closing brace: only `from` may follow
const M_FROM = 5; // after `from`
const M_REQUIRE = 6; // after `require`
const M_CALL_OPEN = 7; // after `require(` or `import(`
const M_CALL_STRING = 8; // after `require('a'`

/** Words after which a `/` starts a regular expression rather than dividing. */
const BEFORE_REGEX = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
  'extends',
]);

export function scanImports(source: string): ImportRef[] {
  const found: ImportRef[] = [];
  try {
    scan(source, found);
  } catch {
    // A scanner bug must not take the graph down: keep what was found.
  }
  return found;
}

function scan(src: string, found: ImportRef[]): void {
  const len = src.length;
  let i = 0;

  // The previous significant token, for regex-or-divide and for `x.require(...)`.
  let prevKind = NONE;
  let prevText = '';

  // Template literals: for each open `${`, the brace depth at which it closes.
  let braceDepth = 0;
  const templates: number[] = [];

  // The matcher.
  let m = M_NONE;
  let clauseKind: ImportKind = 'import';
  let clauseDepth = 0;
  let callKind: ImportKind = 'require';
  let callSpecifier = '';

  const feed = (kind: number, text: string): void => {
    const afterDot = prevKind === PUNCT && (prevText === '.' || prevText === '?.');
    prevKind = kind;
    prevText = text;
    switch (m) {
      case M_IMPORT:
        if (kind === PUNCT && text === '(') {
          m = M_CALL_OPEN;
          callKind = 'dynamic';
          return;
        }
        if (kind === STRING) {
          found.push({ specifier: text, kind: 'side-effect' });
          m = M_NONE;
          return;
        }
        if (kind === IDENT || (kind === PUNCT && (text === '{' || text === '*'))) {
          m = M_CLAUSE;
          clauseKind = 'import';
          clauseDepth = 0;
          if (!clause(kind, text)) break;
          return;
        }
        break;
      case M_EXPORT:
        if ((kind === PUNCT && (text === '{' || text === '*')) || (kind === IDENT && text === 'type')) {
          m = M_CLAUSE;
          clauseKind = 'export';
          clauseDepth = 0;
          if (!clause(kind, text)) break;
          return;
        }
        break;
      case M_CLAUSE:
        if (clause(kind, text)) return;
        break;
      case M_AFTER_BRACE:
        if (kind === IDENT && text === 'from') {
          m = M_FROM;
          return;
        }
        break;
      case M_FROM:
        if (kind === STRING) {
          found.push({ specifier: text, kind: clauseKind });
          m = M_NONE;
          return;
        }
        if (kind === IDENT && text === 'from') return; // `import from from 'a'`
        if (kind === PUNCT && text === ',') {
          m = M_CLAUSE; // `import from, { x } from 'a'`
          return;
        }
        break;
      case M_REQUIRE:
        if (kind === PUNCT && text === '(') {
          m = M_CALL_OPEN;
          callKind = 'require';
          return;
        }
        break;
      case M_CALL_OPEN:
        if (kind === STRING) {
          m = M_CALL_STRING;
          callSpecifier = text;
          return;
        }
        break;
      case M_CALL_STRING:
        if (kind === PUNCT && (text === ')' || text === ',')) {
          found.push({ specifier: callSpecifier, kind: callKind });
          m = M_NONE;
          return;
        }
        break;
    }
    // No shape goes on with this token: does one start with it?
    m = M_NONE;
    if (kind === IDENT && !afterDot) {
      if (text === 'import') m = M_IMPORT;
      else if (text === 'export') m = M_EXPORT;
      else if (text === 'require') m = M_REQUIRE;
    }
  };

  /** One token of an import or export clause; false when the clause cannot go on with it. */
  const clause = (kind: number, text: string): boolean => {
    if (kind === PUNCT) {
      if (text === '{') {
        clauseDepth++;
        return true;
      }
      if (text === '}') {
        if (clauseDepth === 0) return false;
        clauseDepth--;
        if (clauseDepth === 0) m = M_AFTER_BRACE;
        return true;
      }
      return text === ',' || text === '*';
    }
    if (kind === IDENT) {
      if (clauseDepth > 0) return true; // a name inside the braces, whatever it spells
      if (text === 'from') {
        m = M_FROM;
        return true;
      }
      return text !== 'import' && text !== 'export' && text !== 'require';
    }
    // `{ "a-b" as c }`: string names inside the braces.
    return kind === STRING && clauseDepth > 0;
  };

  const regexAllowed = (): boolean => {
    switch (prevKind) {
      case NONE:
        return true;
      case IDENT:
        return BEFORE_REGEX.has(prevText);
      case PUNCT:
        // `)` `]`: an operand ended. `++` `--`: postfix, mostly. `<`: a JSX closing tag.
        return !(prevText === ')' || prevText === ']' || prevText === '++' || prevText === '--' || prevText === '<');
      default:
        return false;
    }
  };

  /** Scans template text from `j` (just after a backtick or a substitution's `}`). */
  const templateText = (j: number, opened: boolean): number => {
    const start = j;
    while (j < len) {
      const c = src.charCodeAt(j);
      if (c === 96 /* ` */) {
        if (opened) feed(STRING, decode(src, start, j));
        else feed(TEMPLATE, '');
        return j + 1;
      }
      if (c === 92 /* \ */) {
        j += 2;
        continue;
      }
      if (c === 36 /* $ */ && src.charCodeAt(j + 1) === 123 /* { */) {
        feed(TEMPLATE, '');
        templates.push(braceDepth);
        return j + 2;
      }
      j++;
    }
    feed(TEMPLATE, '');
    return len;
  };

  if (src.startsWith('#!')) {
    const nl = src.indexOf('\n');
    i = nl < 0 ? len : nl;
  }

  while (i < len) {
    const c = src.charCodeAt(i);

    // Whitespace, line terminators, BOM, no-break space.
    if (c <= 32 || c === 0xa0 || c === 0xfeff || c === 0x2028 || c === 0x2029) {
      i++;
      continue;
    }

    if (c === 47 /* / */) {
      const n = src.charCodeAt(i + 1);
      if (n === 47) {
        const nl = src.indexOf('\n', i + 2);
        i = nl < 0 ? len : nl + 1;
        continue;
      }
      if (n === 42 /* * */) {
        const end = src.indexOf('*/', i + 2);
        i = end < 0 ? len : end + 2;
        continue;
      }
      if (regexAllowed()) {
        const end = regexEnd(src, i + 1);
        if (end > 0) {
          feed(REGEX, '');
          i = end;
          continue;
        }
      }
      feed(PUNCT, '/');
      i++;
      continue;
    }

    if (c === 39 /* ' */ || c === 34 /* " */) {
      let j = i + 1;
      let closed = false;
      while (j < len) {
        const d = src.charCodeAt(j);
        if (d === c) {
          closed = true;
          break;
        }
        if (d === 92) {
          j += 2;
          continue;
        }
        if (d === 10 || d === 13) break;
        j++;
      }
      if (closed) {
        feed(STRING, decode(src, i + 1, j));
        i = j + 1;
      } else {
        // An apostrophe in JSX text or a half-typed line: drop the rest of the line.
        feed(PUNCT, 'unterminated');
        i = j;
      }
      continue;
    }

    if (c === 96 /* ` */) {
      i = templateText(i + 1, true);
      continue;
    }

    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < len && isIdentPart(src.charCodeAt(j))) j++;
      feed(IDENT, src.slice(i, j));
      i = j;
      continue;
    }

    if (c >= 48 && c <= 57) {
      let j = i + 1;
      while (j < len && isNumberPart(src.charCodeAt(j))) j++;
      feed(NUMBER, '');
      i = j;
      continue;
    }

    switch (c) {
      case 46 /* . */: {
        const n = src.charCodeAt(i + 1);
        if (n >= 48 && n <= 57) {
          let j = i + 1;
          while (j < len && isNumberPart(src.charCodeAt(j))) j++;
          feed(NUMBER, '');
          i = j;
        } else if (n === 46 && src.charCodeAt(i + 2) === 46) {
          feed(PUNCT, '...');
          i += 3;
        } else {
          feed(PUNCT, '.');
          i++;
        }
        continue;
      }
      case 63 /* ? */: {
        const n = src.charCodeAt(i + 1);
        const after = src.charCodeAt(i + 2);
        if (n === 46 && !(after >= 48 && after <= 57)) {
          feed(PUNCT, '?.');
          i += 2;
        } else {
          feed(PUNCT, '?');
          i++;
        }
        continue;
      }
      case 43 /* + */:
      case 45 /* - */:
        if (src.charCodeAt(i + 1) === c) {
          feed(PUNCT, c === 43 ? '++' : '--');
          i += 2;
        } else {
          feed(PUNCT, c === 43 ? '+' : '-');
          i++;
        }
        continue;
      case 123 /* { */:
        braceDepth++;
        feed(PUNCT, '{');
        i++;
        continue;
      case 125 /* } */:
        if (templates.length > 0 && templates[templates.length - 1] === braceDepth) {
          templates.pop();
          i = templateText(i + 1, false);
        } else {
          if (braceDepth > 0) braceDepth--;
          feed(PUNCT, '}');
          i++;
        }
        continue;
      default:
        feed(PUNCT, src[i]);
        i++;
    }
  }
}

/** Where a regular expression literal whose body starts at `j` ends, or -1 if it does not on this line. */
function regexEnd(src: string, j: number): number {
  const len = src.length;
  let inClass = false;
  while (j < len) {
    const c = src.charCodeAt(j);
    if (c === 10 || c === 13) return -1;
    if (c === 92) {
      j += 2;
      continue;
    }
    if (c === 91 /* [ */) inClass = true;
    else if (c === 93 /* ] */) inClass = false;
    else if (c === 47 && !inClass) {
      j++;
      while (j < len && isIdentPart(src.charCodeAt(j))) j++; // flags
      return j;
    }
    j++;
  }
  return -1;
}

/** A string literal's value; specifiers rarely hold escapes, so only the plain ones are decoded. */
function decode(src: string, start: number, end: number): string {
  const raw = src.slice(start, end);
  if (raw.indexOf('\\') < 0) return raw;
  return raw.replace(/\\(\r\n|[\s\S])/g, (_m, ch: string) => {
    switch (ch) {
      case 'n':
        return '\n';
      case 't':
        return '\t';
      case '\n':
      case '\r\n':
      case '\r':
        return '';
      default:
        return ch;
    }
  });
}

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 36 || (c >= 128 && c !== 0xa0 && c !== 0xfeff && c !== 0x2028 && c !== 0x2029);
}

function isIdentPart(c: number): boolean {
  return isIdentStart(c) || (c >= 48 && c <= 57);
}

function isNumberPart(c: number): boolean {
  return isIdentPart(c) || c === 46;
}
