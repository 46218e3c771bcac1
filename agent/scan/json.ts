import { isMap, isScalar, LineCounter, parseDocument, type Pair, type YAMLMap } from 'yaml';
import { err, ok, type Result } from '../util/lifecycle';

/**
 * Parses a JSON file's text. The error names the file, the 1-based line and column of the first
 * character that is wrong, and what is wrong: "package-lock.json:12:5: not valid JSON: Unexpected token '}'".
 */
export function parseJson(file: string, text: string): Result<unknown, string> {
  const body = stripBom(text);
  try {
    return ok(JSON.parse(body));
  } catch (e) {
    const { line, column } = lineColumn(body, jsonErrorOffset(body));
    const what = (e as Error).message
      .replace(/, (\.\.\.)?".*$/s, '')
      .replace(/ in JSON at position \d+.*$/s, '')
      .replace(/^Unexpected end of JSON input$/, 'the file ends in the middle of a value');
    return err(`${file}:${line}:${column}: not valid JSON: ${what}`);
  }
}

/** 1-based line and column of an offset (columns count UTF-16 code units, as editors do). */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

class Invalid {
  constructor(readonly at: number) {}
}

/**
 * The offset of the first character that makes `text` not JSON (text.length when it ends too
 * early). JSON.parse does not always say where it stopped; this walk of RFC 8259's grammar does.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new Invalid(i);
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const expect = (c: string) => {
    space();
    if (text[i] !== c) fail();
    i++;
  };
  const string = () => {
    expect('"');
    for (;;) {
      if (i >= text.length || text.charCodeAt(i) < 0x20) fail();
      const c = text[i++];
      if (c === '"') return;
      if (c !== '\\') continue;
      if ('"\\/bfnrt'.includes(text[i] ?? 'x')) i++;
      else if (text[i] === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) i += 5;
      else fail();
    }
  };
  const sequence = (close: string, item: () => void) => {
    i++;
    space();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      item();
      space();
      if (text[i] === close) {
        i++;
        return;
      }
      if (text[i] !== ',') fail();
      i++;
    }
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === '{') {
      return sequence('}', () => {
        string();
        expect(':');
        value();
      });
    }
    if (c === '[') return sequence(']', value);
    if (c === '"') return string();
    const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    number.lastIndex = i;
    if (number.test(text)) {
      i = number.lastIndex;
      return;
    }
    const literal = ['true', 'false', 'null'].find((l) => text.startsWith(l, i));
    if (!literal) fail();
    i += literal!.length;
  };
  try {
    value();
    space();
    if (i < text.length) fail();
    return text.length;
  } catch (e) {
    if (e instanceof Invalid) return e.at;
    // Nesting deeper than the stack: the place is unknown, so point at the start.
    return 0;
  }
}

/** The dependency groups of package.json, in the order a declaration is looked for. */
export const DEPENDENCY_GROUPS = ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies'] as const;

/**
 * Where package.json declares each dependency: the 1-based line and column of its key (the
 * opening quote), from the first group that names it. Empty when the text is not JSON.
 */
export function dependencyKeys(text: string): Map<string, { line: number; column: number }> {
  const found = new Map<string, { line: number; column: number }>();
  const counter = new LineCounter();
  const doc = parseDocument(stripBom(text), { lineCounter: counter, uniqueKeys: false, schema: 'json' });
  if (doc.errors.length > 0 || !isMap(doc.contents)) return found;
  for (const group of DEPENDENCY_GROUPS) {
    const deps = lastPair(doc.contents, group)?.value;
    if (!isMap(deps)) continue;
    const inGroup = new Map<string, { line: number; column: number }>();
    for (const pair of deps.items as Pair[]) {
      if (!isScalar(pair.key) || typeof pair.key.value !== 'string' || !pair.key.range) continue;
      const { line, col } = counter.linePos(pair.key.range[0]);
      // JSON keeps the last of duplicate keys, and so does npm.
      inGroup.set(pair.key.value, { line, column: col });
    }
    for (const [name, at] of inGroup) if (!found.has(name)) found.set(name, at);
  }
  return found;
}

/** A map's pair for a key: the last one, as JSON keeps the last of duplicate keys. */
function lastPair(map: YAMLMap, key: string): Pair | undefined {
  for (let i = map.items.length - 1; i >= 0; i--) {
    const pair = map.items[i] as Pair;
    if (isScalar(pair.key) && pair.key.value === key) return pair;
  }
  return undefined;
}
