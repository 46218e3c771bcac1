/**
 * The config analyzer: conveyor.yml text in, a `ConfigState` out (the config with its
 * defaults, or the diagnostics that say what to change).
 *
 * ```
 *  text ──> YAML parse (nodes keep their ranges) ──> syntax diagnostics, stop if any
 *                 └──> plain data ──> schema validation (conveyor.schema.json) ──> diagnostics
 *                                └──> semantic checks (duplicates, needs, cycles) ──> diagnostics
 *                                └──> defaults and normalization ──> ConveyorConfig
 * ```
 *
 * The schema is the single source of types, enums, patterns and required keys; this module
 * only words its verdicts and maps each one to the YAML node it is about.
 */

import * as path from 'node:path';
import type { ErrorObject } from 'ajv';
import {
  LineCounter,
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  parseAllDocuments,
  type Document,
  type Node as YamlNode,
  type Pair,
  type YAMLError,
} from 'yaml';
import type {
  ConfigState,
  ConveyorConfig,
  Diagnostic,
  DiagnosticCode,
  EnvironmentConfig,
  ExecutorConfig,
  LoadConfig,
  LoadMetric,
  MatrixConfig,
  Range,
  RelatedLocation,
  ReportConfig,
  ScanConfig,
  ServiceConfig,
  SmokeProbe,
  SourceLocation,
  StageConfig,
  StageTrigger,
} from '../protocol';
import { parseThreshold } from '../steps/loadgen';
import { durationToMs, suggestDuration } from './duration';
import { policyProblem } from '../gitops/image-update';
import {
  SCHEMA,
  allowedKeys,
  deref,
  exampleOf,
  expectedPhrase,
  flowYaml,
  joinOr,
  pick,
  quoteValue,
  schemaAt,
  typeAdmits,
  validator,
  type SchemaNode,
} from './schema';
import { findIndentSlip } from './indent';
import { closest, repairToPattern } from './suggest';

export interface AnalyzeOptions {
  /** Pipeline name when the config names none (default: the folder name of the file). */
  defaultName?: string;
}

/** The smallest config worth writing, in YAML flow style (one line, valid YAML). */
export const STARTER_CONFIG = 'pipeline: {stages: [{name: test, run: npm test}]}';

const DEFAULT_TIMEOUT_MS = 60 * 60 * 1000;
const DEFAULT_WHEN: StageTrigger[] = ['commit', 'manual'];
const MAX_ALIAS_COUNT = 10_000;

/** Pure: never throws, whatever the text. `file` is the path used in diagnostics. */
export function analyzeConfigText(text: string, file: string, opts: AnalyzeOptions = {}): ConfigState {
  try {
    const source = typeof text === 'string' ? text : String(text ?? '');
    return new Analysis(source, file, opts ?? {}).run();
  } catch (err) {
    return {
      valid: false,
      file,
      diagnostics: [
        {
          severity: 'error',
          code: 'yaml-syntax',
          message: `the config could not be analyzed: ${err instanceof Error ? err.message : String(err)}`,
          file,
          range: { start: { line: 1, column: 1 }, end: { line: 1, column: 1 } },
          fix: 'simplify the YAML (anchors, aliases, tags) and save again',
        },
      ],
    };
  }
}

/**
 * Where the key at a data path (`['environments', 'web', 'env', 'PORT']`) is written in config
 * text: its first character, or the item's for a list index. Undefined when the text does not
 * have it. Pure: never throws.
 */
export function keyLocation(text: string, file: string, segments: readonly string[]): SourceLocation | undefined {
  try {
    return new Analysis(text, file, {}).keyLocation(segments);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes and ranges
// ---------------------------------------------------------------------------------------------

type Offsets = [number, number];

/** Where a data path lands in the YAML tree. */
interface Located {
  /** Whether every segment was found. */
  found: boolean;
  /** The node of the value (after following aliases); may be a zero-width null scalar. */
  node?: YamlNode;
  /** The key node, when the last segment is a mapping key. */
  key?: YamlNode;
  /** The deepest collection reached. */
  container?: YamlNode;
}

interface Problem {
  keyword: string;
  path: string[];
  data: unknown;
  params: Record<string, unknown>;
  parentSchema?: SchemaNode;
  propertyName?: string;
}

interface Unit {
  err: ErrorObject;
  children: Unit[];
}

function decodePointer(p: string): string[] {
  if (p === '') return [];
  return p
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function isUnder(p: string, prefix: string): boolean {
  return p === prefix || p.startsWith(prefix + '/');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function own(o: Record<string, unknown>, k: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

/** A `<<` key that merges (the parser gives it a symbol value; a quoted "<<" is a plain key). */
function isMergeKey(key: unknown): boolean {
  return isScalar(key) && typeof key.value === 'symbol';
}

/** Whether a schema (or one of its alternatives) accepts `value` as a string. */
function admitsString(s: SchemaNode | undefined, value: string, depth = 0): boolean {
  if (!s || depth > 10) return false;
  const t = pick(s, 'type');
  if (t !== undefined && (Array.isArray(t) ? t : [t]).includes('string')) {
    const en = pick(s, 'enum');
    if (en && !en.includes(value)) return false;
    const pattern = pick(s, 'pattern');
    try {
      return pattern === undefined || new RegExp(pattern, 'u').test(value);
    } catch {
      return false;
    }
  }
  return [...(pick(s, 'anyOf') ?? []), ...(pick(s, 'oneOf') ?? [])].some((b) => admitsString(b, value, depth + 1));
}

function truncate(s: string, max = 40): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function q(s: string): string {
  return JSON.stringify(truncate(s, 60));
}

const TOKEN_NAMES: Record<string, string> = {
  'flow-seq-end': '"]"',
  'flow-seq-start': '"["',
  'flow-map-end': '"}"',
  'flow-map-start': '"{"',
  'flow-error-end': 'end of a flow collection',
  'map-value-ind': '":"',
  'seq-item-ind': '"-"',
  'explicit-key-ind': '"?"',
  'doc-start': '"---"',
  'doc-end': '"..."',
  comma: '","',
  'block-scalar': 'block scalar',
  'block-map': 'mapping',
  'block-seq': 'list',
  'flow-collection': 'flow collection',
  'double-quoted-scalar': 'quoted value',
  'single-quoted-scalar': 'quoted value',
};

function yamlMessage(e: YAMLError): string {
  let m = e.message.split('\n')[0].trim();
  const doc = /^Unexpected \S+ token in YAML (?:document|stream): (.*)$/.exec(m);
  if (doc) {
    let token = doc[1];
    try {
      token = String(JSON.parse(token));
    } catch {
      // not a JSON string: keep it as written
    }
    const first = token.split('\n')[0].trim();
    m = `unexpected ${JSON.stringify(truncate(first || token.trim(), 30))}`;
  } else if (/^Unexpected (\S+) at node end$/.test(m)) {
    const type = /^Unexpected (\S+)/.exec(m)![1];
    m = `unexpected ${type === 'scalar' ? 'text' : (TOKEN_NAMES[type] ?? type)} after the value`;
  } else if (e.code === 'RESOURCE_EXHAUSTION' && /call stack/i.test(m)) {
    m = 'the YAML nests collections too deeply to be read';
  } else {
    m = m.replace(/\b([a-z]+(?:-[a-z]+)+|comma)\b/g, (w) => TOKEN_NAMES[w] ?? w);
  }
  m = m.replace(/^Missing closing (["'])quote$/, 'the quoted string has no closing $1');
  m = m.replace(/\.$/, '');
  return m.charAt(0).toLowerCase() + m.slice(1);
}

function yamlFix(e: YAMLError): string {
  const m = e.message;
  switch (e.code) {
    case 'TAB_AS_INDENT':
      return 'indent with spaces: YAML does not allow tabs for indentation';
    case 'BAD_INDENT':
      return 'indent this line like the other entries of the same list or mapping';
    case 'BLOCK_AS_IMPLICIT_KEY':
      if (/sequence/.test(m)) return 'write the list under a key, e.g. "run:" then "- npm test" on the next lines';
      return 'indent this line like its sibling keys, or move the value of the key above to its own lines';
    case 'MULTILINE_IMPLICIT_KEY':
      return 'write each "key: value" on one line, indented like its sibling keys';
    case 'MISSING_CHAR':
      if (/quote/.test(m)) return 'close the quoted string, or remove its opening quote';
      if (/Missing , or :/.test(m)) return 'separate the entries with ", " and write keys as "key: value"';
      if (/Missing ,/.test(m)) return 'separate the entries with ", "';
      if (/space after :/.test(m)) return 'write a space after ":"';
      if (/followed by map values/.test(m)) return 'write "key: value", with ":" and a space after the key';
      if (/Comments/.test(m)) return 'put a space before "#"';
      if (/Sequence item/.test(m)) return 'start each list entry with "- "';
      if (/Tags and anchors/.test(m)) return 'put a space after the anchor or tag';
      if (/directive/i.test(m)) return 'add a "---" line after the "%" directives, or remove them';
      return 'add the missing character';
    case 'UNEXPECTED_TOKEN':
      if (/Block scalar header/.test(m)) {
        return 'quote a value that starts with ">" or "|", e.g. throughput: ">= 100/s"; for a block scalar, write nothing after "|" or ">" but an indentation or chomping indicator';
      }
      return 'remove it, or quote the value if it is text';
    case 'BAD_SCALAR_START':
      return 'quote the value, e.g. "@value"';
    case 'BAD_DQ_ESCAPE':
      return 'write \\\\ for a backslash inside double quotes, or use single quotes';
    case 'BAD_ALIAS':
      return 'name the anchor or alias, e.g. "&defaults" then "*defaults"';
    case 'ALIAS_PROPS':
      return 'remove the anchor or tag in front of the alias';
    case 'BAD_PROP_ORDER':
      return 'put the anchor or tag after "-" or ":"';
    case 'MULTIPLE_ANCHORS':
      return 'keep a single anchor on this value';
    case 'MULTIPLE_TAGS':
      return 'keep a single tag on this value';
    case 'BLOCK_IN_FLOW':
      return 'inside [...] or {...}, write entries on one line with ", " between them, or use indented block style';
    case 'KEY_OVER_1024_CHARS':
      return 'shorten the key';
    case 'TAG_RESOLVE_FAILED':
    case 'BAD_COLLECTION_TYPE':
      return 'remove the tag (the "!..." in front of the value)';
    case 'BAD_DIRECTIVE':
      return 'remove the "%" directive line';
    case 'NON_STRING_KEY':
      return 'use a plain word as the key';
    case 'RESOURCE_EXHAUSTION':
      return /call stack/i.test(m) ? 'nest fewer lists and mappings' : 'use fewer aliases';
    case 'MULTIPLE_DOCS':
      return 'keep a single YAML document';
    default:
      return 'correct the YAML syntax on this line';
  }
}

// ---------------------------------------------------------------------------------------------
// The analysis
// ---------------------------------------------------------------------------------------------

class Analysis {
  private readonly lc = new LineCounter();
  private readonly diagnostics: Diagnostic[] = [];
  private readonly lineStarts: number[] = [0];
  private doc: Document | undefined;
  private data: unknown;

  constructor(
    private readonly text: string,
    private readonly file: string,
    private readonly opts: AnalyzeOptions,
  ) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  run(): ConfigState {
    const result = this.analyze();
    const diagnostics = this.finish();
    const valid = result !== undefined && !diagnostics.some((d) => d.severity === 'error');
    if (valid) return { valid: true, file: this.file, config: result, diagnostics };
    return { valid: false, file: this.file, diagnostics };
  }

  /** See keyLocation(): the text is parsed only (the first document), not analyzed. */
  keyLocation(segments: readonly string[]): SourceLocation | undefined {
    this.doc = Array.from(parseAllDocuments(this.text, { lineCounter: this.lc, prettyErrors: false, merge: true, logLevel: 'silent' }))[0];
    const loc = this.locate(segments);
    if (!loc.found) return undefined;
    const { start } = this.range(this.keyOffsets(loc));
    return { file: this.file, line: start.line, column: start.column };
  }

  // -- positions ------------------------------------------------------------------------------

  private range(offsets: Offsets): Range {
    const [a, b] = offsets;
    const s = this.lc.linePos(Math.max(0, Math.min(a, this.text.length)));
    const e = this.lc.linePos(Math.max(0, Math.min(Math.max(a, b), this.text.length)));
    return { start: { line: s.line, column: s.col }, end: { line: e.line, column: e.col } };
  }

  private lineEnd(offset: number): number {
    const nl = this.text.indexOf('\n', offset);
    let end = nl < 0 ? this.text.length : nl;
    while (end > offset && /\s/.test(this.text[end - 1])) end--;
    return end;
  }

  /** A node's own text, cut to its first line (a block collection would underline many lines). */
  private nodeOffsets(node: YamlNode | undefined): Offsets | undefined {
    const r = node?.range;
    if (!r) return undefined;
    let [start, end] = r;
    while (end > start && /\s/.test(this.text[end - 1] ?? '')) end--;
    if (end <= start) return undefined;
    const firstLineEnd = this.lineEnd(start);
    if (end > firstLineEnd && firstLineEnd > start) end = firstLineEnd;
    return [start, end];
  }

  /** The first line of a node: "its first line", for a mapping that lacks something. */
  private firstLine(node: YamlNode | undefined): Offsets {
    return this.firstLineAt(node?.range ? node.range[0] : 0);
  }

  /** From `offset` (past any indentation) to the end of its line. */
  private firstLineAt(offset: number): Offsets {
    let s = offset;
    while (s < this.text.length && (this.text[s] === ' ' || this.text[s] === '\t')) s++;
    const end = this.lineEnd(s);
    return [s, Math.max(s, end)];
  }

  private valueOffsets(loc: Located): Offsets {
    return (
      this.nodeOffsets(loc.node) ??
      this.nodeOffsets(loc.key) ??
      (loc.container ? this.firstLine(loc.container) : this.firstLine(this.doc?.contents ?? undefined))
    );
  }

  private keyOffsets(loc: Located): Offsets {
    return this.nodeOffsets(loc.key) ?? this.valueOffsets(loc);
  }

  // -- diagnostics ----------------------------------------------------------------------------

  private add(
    code: DiagnosticCode,
    offsets: Offsets,
    message: string,
    fix: string | undefined,
    extra: { severity?: 'error' | 'warning'; related?: RelatedLocation[] } = {},
  ): void {
    const d: Diagnostic = {
      severity: extra.severity ?? 'error',
      code,
      message,
      file: this.file,
      range: this.range(offsets),
    };
    if (fix) d.fix = fix;
    if (extra.related && extra.related.length > 0) d.related = extra.related;
    this.diagnostics.push(d);
  }

  private related(offsets: Offsets, message: string): RelatedLocation {
    return { file: this.file, range: this.range(offsets), message };
  }

  /** Clamps every range into the text, drops exact repeats and sorts by position. */
  private finish(): Diagnostic[] {
    const lines = this.text.split('\n').map((l) => l.replace(/\r$/, '').length);
    const clampRange = (r: Range): Range => {
      const clampPos = (p: { line: number; column: number }) => {
        const line = Math.min(Math.max(1, Math.floor(p.line) || 1), lines.length);
        const column = Math.min(Math.max(1, Math.floor(p.column) || 1), lines[line - 1] + 1);
        return { line, column };
      };
      const start = clampPos(r.start);
      let end = clampPos(r.end);
      if (end.line < start.line || (end.line === start.line && end.column < start.column)) end = { ...start };
      return { start, end };
    };
    const seen = new Set<string>();
    const out: Diagnostic[] = [];
    for (const d of this.diagnostics) {
      d.range = clampRange(d.range);
      if (d.related) for (const r of d.related) if (r.file === this.file) r.range = clampRange(r.range);
      const key = `${d.code}|${d.message}|${d.range.start.line}:${d.range.start.column}-${d.range.end.line}:${d.range.end.column}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(d);
    }
    return out
      .map((d, i) => ({ d, i }))
      .sort(
        (a, b) =>
          a.d.range.start.line - b.d.range.start.line ||
          a.d.range.start.column - b.d.range.start.column ||
          a.d.range.end.line - b.d.range.end.line ||
          a.d.range.end.column - b.d.range.end.column ||
          a.i - b.i,
      )
      .map(({ d }) => d);
  }

  // -- the steps ------------------------------------------------------------------------------

  private analyze(): ConveyorConfig | undefined {
    const docs = parseAllDocuments(this.text, {
      lineCounter: this.lc,
      prettyErrors: false,
      merge: true,
      logLevel: 'silent',
    });
    const list: Document.Parsed[] = Array.from(docs);
    const streamErrors: YAMLError[] = [];
    const streamWarnings: YAMLError[] = [];
    if (list.length === 0 && 'empty' in docs) {
      streamErrors.push(...(docs.errors ?? []));
      streamWarnings.push(...(docs.warnings ?? []));
    }
    for (const d of list) {
      streamErrors.push(...d.errors);
      streamWarnings.push(...d.warnings);
    }
    this.doc = list[0];
    // The parser often reports one slip several times (and more for deep nesting): keep the
    // first report of each line.
    const lines = new Set<number>();
    if (streamErrors.length > 0) {
      const slip = findIndentSlip(this.text);
      const near = (e: YAMLError) => {
        const line = this.lc.linePos(Math.max(0, Math.min(e.pos?.[0] ?? 0, this.text.length))).line;
        return slip !== undefined && Math.abs(line - slip.line) <= 1;
      };
      if (slip && streamErrors.some(near)) {
        const start = this.lineStarts[slip.line - 1] ?? 0;
        this.add('yaml-syntax', [start + slip.startColumn - 1, start + slip.endColumn - 1], slip.message, slip.fix);
        for (let l = slip.line - 1; l <= slip.line + 1; l++) lines.add(l);
      }
    }
    const byPosition = (a: YAMLError, b: YAMLError) => (a.pos?.[0] ?? 0) - (b.pos?.[0] ?? 0);
    for (const [list, severity] of [
      [streamErrors, 'error'],
      [streamWarnings, 'warning'],
    ] as const) {
      for (const e of [...list].sort(byPosition)) {
        const line = this.lc.linePos(Math.max(0, Math.min(e.pos?.[0] ?? 0, this.text.length))).line;
        if (lines.has(line)) continue;
        lines.add(line);
        this.yamlError(e, severity);
      }
    }

    if (list.length > 1) {
      this.add(
        'yaml-syntax',
        this.firstLineAt(list[1].range[0]),
        `a second YAML document starts here; ${path.basename(this.file) || 'the config'} holds a single document`,
        'remove this "---" and merge what follows into the document above',
      );
    }
    if (this.diagnostics.some((d) => d.severity === 'error')) return undefined;

    const doc = this.doc;
    const root = doc?.contents ?? undefined;
    if (!doc || !root || (isScalar(root) && (root.value === null || root.value === undefined))) {
      const onlyComments = this.text.trim().length > 0;
      this.add(
        'yaml-syntax',
        [0, 0],
        onlyComments ? 'the config is empty: it holds only comments' : 'the config is empty',
        `start with a pipeline, e.g. "${STARTER_CONFIG}"`,
      );
      return undefined;
    }
    if (!isMap(root)) {
      const found = isSeq(root) ? 'a list' : isScalar(root) ? `the value ${this.foundNode(root)}` : 'an alias';
      this.add(
        'yaml-syntax',
        this.nodeOffsets(root) ?? this.firstLine(root),
        `the config must be a mapping of keys such as "pipeline:", not ${found}`,
        `write "key: value" lines starting at column 1, e.g. "${STARTER_CONFIG}"`,
      );
      return undefined;
    }
    if (!this.checkAliases(root)) return undefined;

    const badMerge = this.findBadMerge(root);
    if (badMerge) {
      this.add(
        'yaml-syntax',
        badMerge,
        '"<<" merges mappings only: its value must be an alias of a mapping, or a list of them',
        'write "<<: *name" where "&name" marks a mapping, e.g. "x-defaults: &defaults {retries: 1}"',
      );
      return undefined;
    }
    try {
      this.data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      this.add(
        'yaml-syntax',
        this.firstLine(root),
        `the YAML cannot be read: ${err instanceof Error ? err.message : String(err)}`,
        'simplify the anchors, aliases and "<<" merge keys',
      );
      return undefined;
    }

    const validate = validator();
    const ok = validate(this.data) as boolean;
    if (!ok) this.schemaErrors(validate.errors ?? []);
    this.semanticChecks();
    if (!ok || this.diagnostics.some((d) => d.severity === 'error')) return undefined;
    return this.build();
  }

  private yamlError(e: YAMLError, severity: 'error' | 'warning'): void {
    const pos = Array.isArray(e.pos) ? e.pos : [0, 0];
    let [a, b] = pos;
    if (b <= a) b = a + 1;
    if (e.code === 'DUPLICATE_KEY') {
      const dup = this.findDuplicateKey(a);
      if (dup) {
        this.add(
          'duplicate-name',
          dup.second,
          `duplicate key "${dup.key}": each key may appear once in a mapping`,
          `remove one of the two "${dup.key}" keys, or merge their values`,
          { severity, related: [this.related(dup.first, `"${dup.key}" first written here`)] },
        );
        return;
      }
    }
    if (e.code === 'MISSING_CHAR' && /quote/.test(e.message)) {
      // The parser stops at the end of the text; the quote that is not closed is more useful.
      const open = this.findUnclosedQuote(a);
      if (open !== undefined) [a, b] = [open, this.lineEnd(open)];
    }
    this.add('yaml-syntax', [a, Math.min(b, Math.max(a + 1, this.lineEnd(a)))], yamlMessage(e), yamlFix(e), { severity });
  }

  /** Start of the quoted scalar that ends where an unclosed-quote error was reported. */
  private findUnclosedQuote(offset: number): number | undefined {
    let found: number | undefined;
    const visit = (node: unknown, depth: number): void => {
      if (depth > 200 || found !== undefined || node === null || node === undefined) return;
      if (isScalar(node)) {
        const r = node.range;
        if (r && (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') && Math.abs(r[1] - offset) <= 1) {
          found = r[0];
        }
        return;
      }
      if (isPair(node)) {
        visit(node.key, depth + 1);
        visit(node.value, depth + 1);
      } else if (isCollection(node)) {
        for (const item of node.items) visit(item, depth + 1);
      }
    };
    visit(this.doc?.contents, 0);
    return found;
  }

  private findDuplicateKey(offset: number): { key: string; first: Offsets; second: Offsets } | undefined {
    let result: { key: string; first: Offsets; second: Offsets } | undefined;
    const visit = (node: unknown, depth: number): void => {
      if (result || depth > 200) return;
      if (isMap(node)) {
        const seen = new Map<string, YamlNode>();
        for (const item of node.items) {
          const k = isScalar(item.key) ? String(item.key.value) : undefined;
          if (k !== undefined && isScalar(item.key) && item.key.range) {
            const prev = seen.get(k);
            if (prev && item.key.range[0] === offset) {
              result = {
                key: k,
                first: this.nodeOffsets(prev) ?? this.firstLine(prev),
                second: this.nodeOffsets(item.key) ?? this.firstLine(item.key),
              };
              return;
            }
            if (!prev) seen.set(k, item.key);
          }
          visit(item.value, depth + 1);
        }
      } else if (isSeq(node)) {
        for (const item of node.items) visit(item, depth + 1);
      }
    };
    visit(this.doc?.contents, 0);
    return result;
  }

  /** Reports aliases that refer to their own anchor (the value would be infinite). */
  private checkAliases(root: YamlNode): boolean {
    const doc = this.doc!;
    const ancestors = new Set<unknown>();
    let ok = true;
    const visit = (node: unknown, depth: number): void => {
      if (depth > 500 || node === null || node === undefined) return;
      if (isAlias(node)) {
        const target = node.resolve(doc);
        if (target && ancestors.has(target)) {
          ok = false;
          this.add(
            'yaml-syntax',
            this.nodeOffsets(node) ?? this.firstLine(node),
            `alias "*${node.source}" is inside the value its anchor names, so that value would never end`,
            `use "*${node.source}" outside the value of "&${node.source}", or write the value out`,
          );
        }
        return;
      }
      if (isPair(node)) {
        visit(node.key, depth + 1);
        visit(node.value, depth + 1);
        return;
      }
      if (isCollection(node)) {
        ancestors.add(node);
        for (const item of node.items) visit(item, depth + 1);
        ancestors.delete(node);
      }
    };
    visit(root, 0);
    return ok;
  }

  /** A `<<` merge key whose value is not a mapping (or a list of mappings). */
  private findBadMerge(root: YamlNode): Offsets | undefined {
    let found: Offsets | undefined;
    const visit = (node: unknown, depth: number): void => {
      if (found || depth > 500 || node === null || node === undefined) return;
      if (isMap(node)) {
        for (const item of node.items) {
          if (isMergeKey(item.key)) {
            const v = this.deref(item.value);
            const sources = isSeq(v) ? v.items.map((x) => this.deref(x)) : [v];
            if (!sources.every((x) => isMap(x))) {
              found = this.nodeOffsets(item.value as YamlNode) ?? this.nodeOffsets(item.key as YamlNode) ?? this.firstLine(node);
              return;
            }
          }
          visit(item.value, depth + 1);
        }
      } else if (isSeq(node)) {
        for (const item of node.items) visit(item, depth + 1);
      }
    };
    visit(root, 0);
    return found;
  }

  // -- locating data paths in the YAML tree ---------------------------------------------------

  private deref(node: unknown): YamlNode | undefined {
    let cur = node;
    for (let i = 0; i < 50 && isAlias(cur); i++) cur = cur.resolve(this.doc!);
    return isAlias(cur) ? undefined : (cur as YamlNode | undefined);
  }

  private keyString(key: unknown): string | undefined {
    if (isMergeKey(key)) return '<<';
    if (isScalar(key)) return key.value === null || key.value === undefined ? '' : String(key.value);
    return undefined;
  }

  private findPair(map: unknown, key: string, visited: Set<unknown>): Pair | undefined {
    const m = this.deref(map);
    if (!isMap(m) || visited.has(m)) return undefined;
    visited.add(m);
    let found: Pair | undefined;
    for (const item of m.items) {
      if (!isMergeKey(item.key) && this.keyString(item.key) === key) found = item as Pair;
    }
    if (found) return found;
    // `<<` merge keys: earlier sources win over later ones.
    for (const item of m.items) {
      if (!isMergeKey(item.key)) continue;
      const src = this.deref(item.value);
      const sources = isSeq(src) ? src.items : [src];
      for (const s of sources) {
        const p = this.findPair(s, key, visited);
        if (p) return p;
      }
    }
    return undefined;
  }

  private locate(segments: readonly string[]): Located {
    let node = this.deref(this.doc?.contents);
    let key: YamlNode | undefined;
    let container: YamlNode | undefined;
    for (const seg of segments) {
      if (isMap(node)) {
        container = node;
        const pair = this.findPair(node, seg, new Set());
        if (!pair) return { found: false, node: undefined, key: undefined, container };
        key = (pair.key as YamlNode | null) ?? undefined;
        node = this.deref(pair.value);
      } else if (isSeq(node)) {
        container = node;
        const item = node.items[Number(seg)];
        if (item === undefined) return { found: false, node: undefined, key: undefined, container };
        key = undefined;
        node = this.deref(item);
      } else {
        return { found: false, node: undefined, key: undefined, container };
      }
    }
    return { found: true, node, key, container };
  }

  // -- wording helpers ------------------------------------------------------------------------

  private get(segments: readonly string[]): unknown {
    let cur: unknown = this.data;
    for (const seg of segments) {
      if (Array.isArray(cur)) cur = cur[Number(seg)];
      else if (isPlainObject(cur)) cur = own(cur, seg);
      else return undefined;
    }
    return cur;
  }

  private stageNoun(index: number): string {
    const name = this.get(['pipeline', 'stages', String(index), 'name']);
    return typeof name === 'string' && name.length > 0 ? `stage ${q(name)}` : `stage #${index + 1}`;
  }

  /** What a mapping is, for "unknown key ... in X" and "X has no ...". */
  private noun(p: readonly string[]): string {
    if (p.length === 0) return 'the config';
    if (p.length === 3 && p[0] === 'pipeline' && p[1] === 'stages') return this.stageNoun(Number(p[2]));
    if (p.length === 4 && p[0] === 'pipeline' && p[1] === 'stages') {
      return `the ${p[3]} of ${this.stageNoun(Number(p[2]))}`;
    }
    if (p.length >= 5 && p[0] === 'pipeline' && p[1] === 'stages') {
      const owner = p[3] === 'probes' && /^\d+$/.test(p[4]) ? `probe ${Number(p[4]) + 1}` : p[3] === 'services' ? `service ${q(p[4])}` : `"${p[3]}.${p[4]}"`;
      const inner = p.slice(5).join('.');
      return `${inner ? `"${inner}" of ` : ''}${owner} of ${this.stageNoun(Number(p[2]))}`;
    }
    if (p.length === 2 && p[0] === 'environments') return `environment ${q(p[1])}`;
    return `"${p.join('.')}"`;
  }

  /** What a value is, for "X must be ...". */
  private label(p: readonly string[]): string {
    if (p.length === 0) return 'the config';
    const last = p[p.length - 1];
    if (p.length === 3 && p[0] === 'pipeline' && p[1] === 'stages') return `stage #${Number(last) + 1}`;
    if (p.length === 2 && p[0] === 'environments') return `environment ${q(last)}`;
    if (/^\d+$/.test(last) && p.length >= 2) return `"${p[p.length - 2]}" entry ${Number(last) + 1}`;
    return `"${last}"`;
  }

  private keyLabel(p: readonly string[], name: string): string {
    if (p.length === 1 && p[0] === 'environments') return `environment name ${q(name)}`;
    if (p[p.length - 1] === 'env') return `variable name ${q(name)}`;
    return `key ${q(name)}`;
  }

  private foundNode(node: YamlNode | undefined): string {
    return this.found(isScalar(node) ? node.value : undefined, node);
  }

  /** What was written, for "..., not X". */
  private found(v: unknown, node?: YamlNode): string {
    if (v === null || v === undefined) return 'an empty value';
    if (typeof v === 'string') return q(v);
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') {
      if (isScalar(node) && node.type === 'PLAIN' && node.range) {
        const src = this.text.slice(node.range[0], node.range[1]).trim();
        if (src.length > 0) return truncate(src);
      }
      return String(v);
    }
    if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : 'a list';
    if (v instanceof Date) return 'a date';
    if (v instanceof Uint8Array) return 'binary data';
    if (v instanceof Set) return 'a set';
    return 'a mapping';
  }

  /** ` e.g. "key: value"` from the schema's examples, or ''. */
  private exampleSuffix(p: readonly string[], s: SchemaNode | undefined): string {
    const ex = exampleOf(s);
    if (ex === undefined) return '';
    const last = p[p.length - 1];
    if (last === undefined) return `, e.g. "${flowYaml(ex)}"`;
    if (/^\d+$/.test(last)) return `, e.g. "- ${flowYaml(ex)}"`;
    return `, e.g. "${last}: ${flowYaml(ex)}"`;
  }

  private writeFix(p: readonly string[], s: SchemaNode | undefined): string {
    return `write ${expectedPhrase(s)}${this.exampleSuffix(p, s)}`;
  }

  // -- schema errors --------------------------------------------------------------------------

  /** Groups each anyOf/oneOf error with the branch errors ajv reported just before it. */
  private units(errors: readonly ErrorObject[]): Unit[] {
    const out: Unit[] = [];
    for (const err of errors) {
      if (err.keyword === 'anyOf' || err.keyword === 'oneOf') {
        const children: Unit[] = [];
        while (out.length > 0 && isUnder(out[out.length - 1].err.instancePath, err.instancePath)) {
          children.unshift(out.pop()!);
        }
        out.push({ err, children });
      } else {
        out.push({ err, children: [] });
      }
    }
    return out;
  }

  private problem(err: ErrorObject, keyword = err.keyword): Problem {
    return {
      keyword,
      path: decodePointer(err.instancePath),
      data: err.data,
      params: err.params as Record<string, unknown>,
      parentSchema: err.parentSchema as SchemaNode | undefined,
      propertyName: err.propertyName,
    };
  }

  /**
   * One problem per mistake. For a failed anyOf/oneOf: when the value's type fits no branch,
   * a single type problem; when it fits some, the errors of those branches only.
   */
  private flatten(units: readonly Unit[]): Problem[] {
    const out: Problem[] = [];
    for (const u of units) {
      const err = u.err;
      if (err.keyword === 'propertyNames') continue;
      if (err.keyword !== 'anyOf' && err.keyword !== 'oneOf') {
        out.push(this.problem(err));
        continue;
      }
      const branches = Array.isArray(err.schema) ? (err.schema as SchemaNode[]) : [];
      const fits = branches.filter((b) => typeAdmits(b, err.data));
      if (fits.length === 0) {
        out.push(this.problem(err, 'type'));
        continue;
      }
      const kept = u.children.filter(
        (c) =>
          c.err.instancePath !== err.instancePath ||
          (c.err.keyword !== 'type' && typeAdmits(c.err.parentSchema as SchemaNode | undefined, err.data)),
      );
      if (kept.length === 0) {
        out.push(this.problem(err, 'type'));
        continue;
      }
      out.push(...this.flatten(kept));
    }
    return out;
  }

  private schemaErrors(errors: readonly ErrorObject[]): void {
    const problems = this.flatten(this.units(errors));
    const typed = new Set(problems.filter((p) => p.keyword === 'type').map((p) => p.path.join('/')));
    const unknown = problems.filter((p) => p.keyword === 'additionalProperties');
    for (const p of problems) {
      if (p.keyword !== 'type' && !p.propertyName && typed.has(p.path.join('/'))) continue;
      if (p.keyword === 'required') {
        // `naem: test` gives both an unknown "naem" and a missing "name": the first says it all.
        const missing = String(p.params.missingProperty);
        const at = p.path.join('/');
        const misspelt = unknown.some(
          (u) => u.path.join('/') === at && closest(String(u.params.additionalProperty), [missing]) === missing,
        );
        if (misspelt) continue;
      }
      this.report(p);
    }
  }

  private report(p: Problem): void {
    switch (p.keyword) {
      case 'additionalProperties':
        return this.unknownKey(p.path, String(p.params.additionalProperty), p.parentSchema);
      case 'required':
        return this.missingKey(p.path, String(p.params.missingProperty));
      case 'type':
        return this.wrongType(p);
      case 'enum':
      case 'const':
        return this.badEnum(p);
      case 'pattern':
        return this.badPattern(p);
      default:
        return this.badValue(p);
    }
  }

  private unknownKey(p: string[], key: string, parentSchema: SchemaNode | undefined): void {
    const loc = this.locate([...p, key]);
    const allowed = allowedKeys(parentSchema);
    const where = p.length === 0 ? 'at the top level' : `in ${this.noun(p)}`;
    let fix: string | undefined = this.misplacedFix(p, key);
    if (!fix) {
      const near = closest(key, allowed);
      if (near) fix = `did you mean "${near}"?`;
    }
    if (!fix && p.length === 0 && (loc.node as { anchor?: string } | undefined)?.anchor) {
      fix = `rename it "x-${key}": top-level keys starting with "x-" are ignored and may hold anchors`;
    }
    if (!fix) {
      fix = allowed.length > 0 ? `remove it; allowed keys: ${allowed.join(', ')}` : 'remove it: no keys are allowed here yet';
    }
    this.add('unknown-key', this.keyOffsets(loc), `unknown key ${q(key)} ${where}`, fix);
  }

  /** A key that belongs to another mapping of the config: usually an indentation slip. */
  private misplacedFix(p: readonly string[], key: string): string | undefined {
    const stageSchema = deref(SCHEMA.definitions?.stage);
    const sites: { where: string; here: boolean; schema: SchemaNode | undefined }[] = [
      { where: 'to the top level, without indentation', here: p.length === 0, schema: SCHEMA },
      {
        where: 'under "pipeline:"',
        here: p.length === 1 && p[0] === 'pipeline',
        schema: SCHEMA.definitions?.pipeline,
      },
      {
        where: 'into a stage (an entry of "stages:")',
        here: p.length === 3 && p[1] === 'stages',
        schema: stageSchema,
      },
      { where: 'under "watch:"', here: p.length === 1 && p[0] === 'watch', schema: SCHEMA.definitions?.watch },
      {
        where: 'into an environment under "environments:"',
        here: p.length === 2 && p[0] === 'environments',
        schema: SCHEMA.definitions?.environment,
      },
      {
        where: 'under the stage\'s "report:"',
        here: p.length === 4 && p[3] === 'report',
        schema: stageSchema?.properties?.report,
      },
    ];
    for (const site of sites) {
      if (site.here) continue;
      if (allowedKeys(site.schema).includes(key)) return `move "${key}" ${site.where}`;
    }
    return undefined;
  }

  private missingKey(p: string[], key: string): void {
    const loc = this.locate(p);
    const offsets = loc.key ? this.keyOffsets(loc) : this.firstLine(loc.node ?? loc.container);
    const s = schemaAt([...p, key], this.data);
    const ex = exampleOf(s);
    const fix = ex !== undefined ? `add "${key}: ${flowYaml(ex)}"` : `add "${key}:" with ${expectedPhrase(s)}`;
    this.add('missing-key', offsets, `${this.noun(p)} has no "${key}"`, fix);
  }

  private wrongType(p: Problem): void {
    const loc = this.locate(p.path);
    const s = schemaAt(p.path, this.data);
    const expected = expectedPhrase(s);
    let fix = this.writeFix(p.path, s);
    const resolved = deref(s);
    const last = p.path[p.path.length - 1];
    const written = this.found(p.data, loc.node);
    const numeric = ['integer', 'number'].includes(String(pick(resolved, 'type')));
    if ((typeof p.data === 'number' || typeof p.data === 'boolean') && admitsString(s, written)) {
      // `name: 123` or `run: true`: YAML read a number or a boolean where text was meant.
      fix = `quote it: ${JSON.stringify(written)}`;
    } else if (numeric && typeof p.data === 'string' && p.data.trim() !== '' && Number.isFinite(Number(p.data)) && last) {
      // `retries: "2"`: a number in quotes is text.
      fix = `remove the quotes: "${last}: ${p.data.trim()}"`;
    } else if (pick(resolved, 'type') === 'array' && last && !/^\d+$/.test(last)) {
      const items = pick(resolved, 'items');
      if (['string', 'number', 'boolean'].includes(typeof p.data) && typeAdmits(items, p.data)) {
        // A single value where a list is expected: offer the list.
        fix = `write a list: "${last}: [${flowYaml(p.data)}]"`;
      } else if (isPlainObject(p.data) && allowedKeys(items).includes('name')) {
        // Entries written as a mapping by name: each one becomes "- name: ...".
        const first = Object.keys(p.data)[0] ?? 'test';
        fix = `write each entry as a list item starting with "- name: ${first}", its other keys indented below it`;
      }
    }
    this.add('wrong-type', this.valueOffsets(loc), `${this.label(p.path)} must be ${expected}, not ${this.found(p.data, loc.node)}`, fix);
  }

  private badEnum(p: Problem): void {
    const loc = this.locate(p.path);
    const values: unknown[] =
      p.keyword === 'const'
        ? [p.params.allowedValue]
        : Array.isArray(p.params.allowedValues)
          ? (p.params.allowedValues as unknown[])
          : [];
    const must = values.length <= 2 ? joinOr(values.map(quoteValue)) : `one of ${joinOr(values.map(quoteValue))}`;
    const near = typeof p.data === 'string' ? closest(p.data, values.map(String)) : undefined;
    const last = p.path[p.path.length - 1] ?? '';
    let fix: string;
    if (near) fix = `did you mean "${near}"?`;
    else if (values.length === 1 && !/^\d+$/.test(last)) fix = `write "${last}: ${flowYaml(values[0])}"`;
    else fix = `write ${joinOr(values.map(quoteValue))}`;
    this.add(
      'invalid-value',
      this.valueOffsets(loc),
      `${this.label(p.path)} must be ${must}, not ${this.found(p.data, loc.node)}`,
      fix,
    );
  }

  private badPattern(p: Problem): void {
    const pattern = String(p.params.pattern ?? '');
    const rule = p.parentSchema?.patternErrorMessage ?? `must match the pattern ${pattern}`;
    let re: RegExp | undefined;
    try {
      re = new RegExp(pattern, 'u');
    } catch {
      re = undefined;
    }
    if (p.propertyName !== undefined) {
      const name = p.propertyName;
      const loc = this.locate([...p.path, name]);
      const repaired = re ? repairToPattern(name, re) : undefined;
      this.add(
        'invalid-value',
        this.keyOffsets(loc),
        `${this.keyLabel(p.path, name)} ${rule}`,
        repaired ? `did you mean "${repaired}"?` : `write ${expectedPhrase(p.parentSchema)}`,
      );
      return;
    }
    const loc = this.locate(p.path);
    const value = typeof p.data === 'string' ? p.data : String(p.data);
    const last = p.path[p.path.length - 1];
    const repaired =
      last === 'timeout'
        ? suggestDuration(value)
        : re && !/[/\\]/.test(value)
          ? repairToPattern(value, re)
          : undefined;
    const s = schemaAt(p.path, this.data);
    this.add(
      'invalid-value',
      this.valueOffsets(loc),
      `${this.label(p.path)} ${rule}, not ${this.found(p.data, loc.node)}`,
      repaired ? `did you mean "${repaired}"?` : this.writeFix(p.path, s),
    );
  }

  private badValue(p: Problem): void {
    const loc = this.locate(p.path);
    const s = schemaAt(p.path, this.data);
    const what = this.label(p.path);
    const limit = typeof p.params.limit === 'number' ? p.params.limit : undefined;
    let message: string;
    switch (p.keyword) {
      case 'minItems':
        message = limit === 1 ? `${what} must not be an empty list` : `${what} must have at least ${limit} entries`;
        break;
      case 'minLength':
        message = limit === 1 ? `${what} must not be an empty string` : `${what} must be at least ${limit} characters long`;
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        message = `${what} must be ${expectedPhrase(s)}, not ${this.found(p.data, loc.node)}`;
        break;
      default:
        message = `${what} must be ${expectedPhrase(s)}`;
    }
    this.add('invalid-value', this.valueOffsets(loc), message, this.writeFix(p.path, s));
  }

  // -- semantic checks ------------------------------------------------------------------------

  /** Image update policies: a semver range or a pattern, and each must parse. */
  private checkImageUpdates(): void {
    const envs = this.get(['environments']);
    if (!isPlainObject(envs)) return;
    for (const name of Object.keys(envs)) {
      const env = envs[name];
      if (!isPlainObject(env)) continue;
      const policy = own(env, 'imageUpdate');
      if (!isPlainObject(policy)) continue;
      const semverRange = own(policy, 'semver');
      const pattern = own(policy, 'pattern');
      const problem = policyProblem({ semver: typeof semverRange === 'string' ? semverRange : null, pattern: typeof pattern === 'string' ? pattern : null });
      if (!problem) continue;
      const key = typeof semverRange === 'string' && /semver/.test(problem) ? 'semver' : typeof pattern === 'string' && /regular expression:/.test(problem) ? 'pattern' : null;
      const loc = this.locate(key ? ['environments', name, 'imageUpdate', key] : ['environments', name, 'imageUpdate']);
      this.add('invalid-value', key ? this.valueOffsets(loc) : this.keyOffsets(loc), problem, key ? undefined : 'add semver: "^1.0.0" (or pattern: "^main-[0-9]+$") under imageUpdate');
    }
  }

  private semanticChecks(): void {
    this.checkImageUpdates();
    const stages = this.get(['pipeline', 'stages']);
    const names = new Map<string, number>();
    const list = Array.isArray(stages) ? stages : [];

    // Duplicate stage names.
    list.forEach((st, i) => {
      if (!isPlainObject(st)) return;
      const name = own(st, 'name');
      if (typeof name !== 'string') return;
      const first = names.get(name);
      if (first === undefined) {
        names.set(name, i);
        return;
      }
      const here = this.locate(['pipeline', 'stages', String(i), 'name']);
      const there = this.locate(['pipeline', 'stages', String(first), 'name']);
      let n = 2;
      while (list.some((o) => isPlainObject(o) && own(o, 'name') === `${name}-${n}`)) n++;
      this.add('duplicate-name', this.valueOffsets(here), `duplicate stage name ${q(name)}`, `rename this stage, e.g. "${name}-${n}"`, {
        related: [this.related(this.valueOffsets(there), `stage ${q(name)} first defined here`)],
      });
    });
    const stageNames = [...names.keys()];

    // Needs: unknown names, repeats; and the graph for cycles.
    interface Edge {
      from: number;
      to: number;
      at: Offsets;
    }
    const edges: Edge[][] = list.map(() => []);
    list.forEach((st, i) => {
      if (!isPlainObject(st)) return;
      const needs = own(st, 'needs');
      const entries: { value: unknown; path: string[] }[] =
        typeof needs === 'string'
          ? [{ value: needs, path: ['pipeline', 'stages', String(i), 'needs'] }]
          : Array.isArray(needs)
            ? needs.map((value, j) => ({ value, path: ['pipeline', 'stages', String(i), 'needs', String(j)] }))
            : [];
      const seen = new Map<string, Offsets>();
      for (const { value, path: p } of entries) {
        if (typeof value !== 'string' || value.length === 0) continue;
        const at = this.valueOffsets(this.locate(p));
        const before = seen.get(value);
        if (before) {
          this.add('duplicate-name', at, `${this.stageNoun(i)} needs ${q(value)} twice`, `remove the second ${q(value)}`, {
            severity: 'warning',
            related: [this.related(before, `${q(value)} first listed here`)],
          });
          continue;
        }
        seen.set(value, at);
        const target = names.get(value);
        if (target === undefined) {
          const others = stageNames.filter((n) => n !== own(st, 'name'));
          this.add(
            'unknown-need',
            at,
            `${this.stageNoun(i)} needs ${q(value)}, but no stage has that name`,
            this.nameFix(value, others, ['pipeline', 'stages', String(i), 'needs']),
          );
          continue;
        }
        edges[i].push({ from: i, to: target, at });
      }
    });
    this.cycles(list, edges);

    this.kindChecks(list, names, edges);

    // watch.stages must name stages.
    const watchStages = this.get(['watch', 'stages']);
    if (Array.isArray(watchStages) && Array.isArray(stages)) {
      watchStages.forEach((value, j) => {
        if (typeof value !== 'string' || value.length === 0 || names.has(value)) return;
        const at = this.valueOffsets(this.locate(['watch', 'stages', String(j)]));
        this.add(
          'unknown-need',
          at,
          `"watch.stages" names ${q(value)}, but no stage has that name`,
          this.nameFix(value, stageNames, ['watch', 'stages']),
        );
      });
    }

    // Working directories stay inside the folder of the config.
    const workdirSchema = deref(schemaAt(['pipeline', 'stages', '0', 'workdir']));
    const relative = workdirSchema?.pattern ? new RegExp(workdirSchema.pattern, 'u') : undefined;
    list.forEach((st, i) => {
      if (!isPlainObject(st)) return;
      const w = own(st, 'workdir');
      if (typeof w !== 'string' || (relative && !relative.test(w))) return;
      const normalized = path.posix.normalize(w.replace(/\\/g, '/'));
      if (normalized === '..' || normalized.startsWith('../')) {
        const loc = this.locate(['pipeline', 'stages', String(i), 'workdir']);
        this.add(
          'invalid-value',
          this.valueOffsets(loc),
          `"workdir" must stay inside the folder holding conveyor.yml, not ${q(w)}`,
          `write a path below that folder, e.g. "workdir: packages/api"`,
        );
      }
    });

    // Secrets listed twice.
    const secrets = this.get(['secrets']);
    if (Array.isArray(secrets)) {
      const seen = new Map<string, Offsets>();
      secrets.forEach((value, j) => {
        if (typeof value !== 'string') return;
        const at = this.valueOffsets(this.locate(['secrets', String(j)]));
        const before = seen.get(value);
        if (before) {
          this.add('duplicate-name', at, `secret ${q(value)} is listed twice`, `remove the second ${q(value)}`, {
            severity: 'warning',
            related: [this.related(before, `${q(value)} first listed here`)],
          });
        } else {
          seen.set(value, at);
        }
      });
    }
  }

  private nameFix(value: string, stageNames: readonly string[], listPath: readonly string[]): string {
    const near = closest(value, stageNames);
    if (near) return `did you mean "${near}"?`;
    const parts = value.split(/[\s,]+/).filter((s) => s.length > 0);
    if (parts.length > 1 && parts.every((s) => stageNames.includes(s))) {
      return `write a list: "${listPath[listPath.length - 1]}: [${parts.join(', ')}]"`;
    }
    if (stageNames.length === 0) return `add a stage named ${q(value)}, or remove this entry`;
    const shown = stageNames.slice(0, 10).join(', ') + (stageNames.length > 10 ? ', …' : '');
    return `name one of the stages: ${shown}`;
  }

  /** One diagnostic per strongly connected group of stages that need each other. */
  private cycles(list: readonly unknown[], edges: { from: number; to: number; at: Offsets }[][]): void {
    const n = list.length;
    // Tarjan's algorithm, iterative.
    const index = new Array<number>(n).fill(-1);
    const low = new Array<number>(n).fill(0);
    const onStack = new Array<boolean>(n).fill(false);
    const stack: number[] = [];
    const groups: number[][] = [];
    let counter = 0;
    for (let root = 0; root < n; root++) {
      if (index[root] !== -1) continue;
      const work: { v: number; e: number }[] = [{ v: root, e: 0 }];
      index[root] = low[root] = counter++;
      stack.push(root);
      onStack[root] = true;
      while (work.length > 0) {
        const frame = work[work.length - 1];
        const out = edges[frame.v];
        if (frame.e < out.length) {
          const w = out[frame.e++].to;
          if (index[w] === -1) {
            index[w] = low[w] = counter++;
            stack.push(w);
            onStack[w] = true;
            work.push({ v: w, e: 0 });
          } else if (onStack[w]) {
            low[frame.v] = Math.min(low[frame.v], index[w]);
          }
          continue;
        }
        work.pop();
        if (work.length > 0) {
          const parent = work[work.length - 1].v;
          low[parent] = Math.min(low[parent], low[frame.v]);
        }
        if (low[frame.v] === index[frame.v]) {
          const group: number[] = [];
          let w: number;
          do {
            w = stack.pop()!;
            onStack[w] = false;
            group.push(w);
          } while (w !== frame.v);
          groups.push(group);
        }
      }
    }

    const nameOf = (i: number): string => {
      const st = list[i];
      const name = isPlainObject(st) ? own(st, 'name') : undefined;
      return typeof name === 'string' ? name : `#${i + 1}`;
    };
    const cyclic = groups
      .filter((g) => g.length > 1 || edges[g[0]].some((e) => e.to === g[0]))
      .map((g) => g.sort((a, b) => a - b))
      .sort((a, b) => a[0] - b[0]);
    for (const group of cyclic) {
      const members = new Set(group);
      const start = group[0];
      // Shortest way back to the first stage written, following needs in the order written.
      const via = new Map<number, { from: number; to: number; at: Offsets }>();
      const queue = [start];
      let closing: { from: number; to: number; at: Offsets } | undefined;
      const visited = new Set<number>([start]);
      while (queue.length > 0 && !closing) {
        const v = queue.shift()!;
        for (const e of edges[v]) {
          if (!members.has(e.to)) continue;
          if (e.to === start) {
            closing = e;
            break;
          }
          if (visited.has(e.to)) continue;
          visited.add(e.to);
          via.set(e.to, e);
          queue.push(e.to);
        }
      }
      if (!closing) continue;
      const path: { from: number; to: number; at: Offsets }[] = [closing];
      for (let v = closing.from; v !== start; ) {
        const e = via.get(v)!;
        path.unshift(e);
        v = e.from;
      }
      const chain = [start, ...path.map((e) => e.to)].map(nameOf).join(' → ');
      const last = path[path.length - 1];
      const fix =
        path.length === 1
          ? `remove "${nameOf(start)}" from its own needs`
          : `remove "${nameOf(last.to)}" from the needs of "${nameOf(last.from)}", or another need of the cycle`;
      this.add('cycle', path[0].at, `cycle: ${chain}`, fix, {
        related: path.map((e) => this.related(e.at, `"${nameOf(e.from)}" needs "${nameOf(e.to)}"`)),
      });
    }
  }

  // -- the config -----------------------------------------------------------------------------

  private build(): ConveyorConfig {
    const data = this.data as Record<string, unknown>;
    const pipeline = own(data, 'pipeline') as Record<string, unknown>;
    const stages = (own(pipeline, 'stages') as Record<string, unknown>[]).map((st, i) => this.buildStage(st, i));
    return {
      pipeline: {
        name: typeof own(pipeline, 'name') === 'string' ? (own(pipeline, 'name') as string) : this.defaultName(),
        branches: [...((own(pipeline, 'branches') as string[] | undefined) ?? [])],
        maxParallel: (own(pipeline, 'maxParallel') as number | undefined) ?? 4,
        onNewRun: (own(pipeline, 'onNewRun') as 'queue' | 'supersede' | undefined) ?? 'queue',
        stages,
      },
      environments: this.buildEnvironments(),
      watch: this.buildWatch(),
      secrets: unique((own(data, 'secrets') as string[] | undefined) ?? []),
      gitops: this.buildGitOps(),
      alerts: this.buildAlerts(),
    };
  }

  private buildAlerts(): ConveyorConfig['alerts'] {
    const a = (own(this.data as Record<string, unknown>, 'alerts') as Record<string, unknown> | undefined) ?? {};
    const rule = <T>(key: string, fill: (o: Record<string, unknown>) => T): T | null => {
      const v = own(a, key);
      if (v === false) return null;
      return fill(isPlainObject(v) ? v : {});
    };
    const hook = own(a, 'webhook') as Record<string, unknown> | undefined;
    return {
      pipelineFailed: rule('pipelineFailed', (o) => ({ branches: [...((own(o, 'branches') as string[] | undefined) ?? [])] })),
      slower: rule('slower', (o) => ({ percent: (own(o, 'percent') as number | undefined) ?? 50, minSamples: (own(o, 'minSamples') as number | undefined) ?? 5 })),
      drift: rule('drift', () => ({})),
      rollback: rule('rollback', () => ({})),
      vulnerability: rule('vulnerability', (o) => ({ severity: (own(o, 'severity') as 'low' | 'moderate' | 'high' | 'critical' | undefined) ?? 'high' })),
      flaky: rule('flaky', (o) => ({ window: (own(o, 'window') as number | undefined) ?? 10, flips: (own(o, 'flips') as number | undefined) ?? 2 })),
      webhook: isPlainObject(hook)
        ? {
            url: own(hook, 'url') as string,
            timeoutMs: durationToMs((own(hook, 'timeout') as number | string | undefined) ?? '5s') ?? 5000,
            retries: (own(hook, 'retries') as number | undefined) ?? 3,
          }
        : null,
    };
  }

  private buildGitOps(): ConveyorConfig['gitops'] {
    const g = (own(this.data as Record<string, unknown>, 'gitops') as Record<string, unknown> | undefined) ?? {};
    return {
      repo: (own(g, 'repo') as string | undefined) ?? null,
      branch: (own(g, 'branch') as string | undefined) ?? 'conveyor/state',
      path: ((own(g, 'path') as string | undefined) ?? 'environments').replace(/^\/+|\/+$/g, '') || 'environments',
      intervalMs: durationToMs((own(g, 'interval') as number | string | undefined) ?? '30s') ?? 30_000,
    };
  }

  private defaultName(): string {
    if (this.opts.defaultName) return this.opts.defaultName;
    const folder = path.basename(path.dirname(this.file));
    return folder && folder !== '.' && folder !== '..' && folder !== path.sep ? folder : 'pipeline';
  }

  /**
   * What each stage kind needs beyond the schema: `run` for commands; for deploys an environment
   * that exists, and an artifact stage among the ones it needs.
   */
  private kindChecks(list: unknown[], names: Map<string, number>, edges: { to: number }[][]): void {
    const envs = this.get(['environments']);
    const envNames = isPlainObject(envs) ? Object.keys(envs) : [];
    list.forEach((st, i) => {
      if (!isPlainObject(st)) return;
      const base = ['pipeline', 'stages', String(i)];
      const kind = own(st, 'kind') ?? 'command';
      const verifies = own(st, 'verifies');
      if (typeof verifies === 'string') {
        const target = names.get(verifies);
        const at = this.valueOffsets(this.locate([...base, 'verifies']));
        const targetStage = target === undefined ? undefined : list[target];
        if (target === undefined) {
          this.add('unknown-need', at, `${this.stageNoun(i)} verifies ${q(verifies)}, but no stage has that name`, this.nameFix(verifies, [...names.keys()], [...base, 'verifies']));
        } else if (!isPlainObject(targetStage) || own(targetStage, 'kind') !== 'deploy') {
          this.add('invalid-value', at, `${this.stageNoun(i)} verifies ${q(verifies)}, which is not a deploy stage`, 'name a stage of kind deploy');
        } else if (!this.reaches(i, target, edges)) {
          this.add('invalid-value', at, `${this.stageNoun(i)} verifies ${q(verifies)} but does not need it`, `add "${verifies}" to its needs`);
        }
      }
      // A missing key written with a typo is reported once, as the unknown key with its did-you-mean.
      const misspelt = (key: string) => Object.keys(st).some((k) => k !== key && closest(k, [key]) === key);
      if (kind === 'command' && own(st, 'run') === undefined && !misspelt('run')) this.missingKey(base, 'run');
      if (kind === 'image' && own(st, 'image') === undefined && !misspelt('image')) this.missingKey(base, 'image');
      this.testKindChecks(st, i, String(kind), envNames, misspelt);
      if (kind !== 'deploy') return;
      const env = own(st, 'environment');
      if (env === undefined) {
        this.missingKey(base, 'environment');
      } else if (typeof env === 'string' && !envNames.includes(env)) {
        this.add(
          'invalid-value',
          this.valueOffsets(this.locate([...base, 'environment'])),
          `${this.stageNoun(i)} deploys to ${q(env)}, but no environment has that name`,
          environmentFix(env, envNames),
        );
      }
      const artifact = own(st, 'artifact');
      if (typeof artifact === 'string') {
        const target = names.get(artifact);
        const at = this.valueOffsets(this.locate([...base, 'artifact']));
        if (target === undefined) {
          this.add('unknown-need', at, `${this.stageNoun(i)} deploys the artifact of ${q(artifact)}, but no stage has that name`, this.nameFix(artifact, [...names.keys()], [...base, 'artifact']));
        } else if (!this.reaches(i, target, edges)) {
          this.add('invalid-value', at, `${this.stageNoun(i)} deploys the artifact of ${q(artifact)} but does not need it`, `add "${artifact}" to its needs`);
        }
      }
    });
    this.acceptanceGate(list, edges);
  }

  /** Whether stage `from` needs stage `to`, directly or not. */
  private reaches(from: number, to: number, edges: { to: number }[][]): boolean {
    const seen = new Set<number>();
    const stack = [from];
    while (stack.length) {
      const n = stack.pop()!;
      for (const e of edges[n] ?? []) {
        if (e.to === to) return true;
        if (!seen.has(e.to)) {
          seen.add(e.to);
          stack.push(e.to);
        }
      }
    }
    return false;
  }

  private buildStage(st: Record<string, unknown>, i: number): StageConfig {
    const list = (v: unknown): string[] => (v === undefined ? [] : typeof v === 'string' ? [v] : [...(v as string[])]);
    const envIn = (own(st, 'env') as Record<string, unknown> | undefined) ?? {};
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(envIn)) {
      if (typeof v === 'string') {
        env[k] = v;
      } else {
        const node = this.locate(['pipeline', 'stages', String(i), 'env', k]).node;
        const written =
          isScalar(node) && node.type === 'PLAIN' && node.range ? this.text.slice(node.range[0], node.range[1]).trim() : '';
        env[k] = written.length > 0 ? written : String(v);
      }
    }
    const timeout = own(st, 'timeout') as number | string | undefined;
    const when = own(st, 'when') as StageTrigger | StageTrigger[] | undefined;
    const report = own(st, 'report') as ReportConfig | undefined;
    const stage: StageConfig = {
      name: own(st, 'name') as string,
      kind: (own(st, 'kind') as StageConfig['kind'] | undefined) ?? 'command',
      run: list(own(st, 'run')),
      needs: unique(list(own(st, 'needs'))),
      env,
      workdir: (own(st, 'workdir') as string | undefined) ?? '.',
      timeoutMs: timeout === undefined ? DEFAULT_TIMEOUT_MS : (durationToMs(timeout) ?? DEFAULT_TIMEOUT_MS),
      retries: (own(st, 'retries') as number | undefined) ?? 0,
      when: when === undefined ? [...DEFAULT_WHEN] : unique(typeof when === 'string' ? [when] : when),
      artifacts: list(own(st, 'artifacts')),
    };
    if (report) stage.report = { format: report.format, path: report.path };
    if (typeof own(st, 'environment') === 'string') stage.environment = own(st, 'environment') as string;
    if (typeof own(st, 'artifact') === 'string') stage.artifact = own(st, 'artifact') as string;
    if (typeof own(st, 'verifies') === 'string') stage.verifies = own(st, 'verifies') as string;
    const executor = own(st, 'executor') as string | Record<string, string> | undefined;
    if (executor !== undefined) {
      const o = typeof executor === 'string' ? { kind: executor } : executor;
      const opt = (k: string) => (typeof own(o, k) === 'string' ? (own(o, k) as string) : null);
      stage.executor = { kind: o.kind as ExecutorConfig['kind'], image: opt('image'), kubeconfig: opt('kubeconfig'), context: opt('context'), namespace: opt('namespace') };
    }
    const image = own(st, 'image') as string | Record<string, string> | undefined;
    if (image !== undefined) {
      const o = typeof image === 'string' ? { name: image } : image;
      stage.image = { name: o.name, registry: o.registry ?? '127.0.0.1:5000', context: o.context ?? '.', dockerfile: o.dockerfile ?? 'Dockerfile' };
    }
    this.buildTestKind(stage, st, i);
    return stage;
  }

  // -- the test stage kinds -------------------------------------------------------------------

  /**
   * What the test kinds need beyond the schema: their own key (and `run` where they run
   * commands), an environment that exists, and what the schema cannot judge: one target per
   * probe or load, regular expressions, matrix cells, load thresholds, advisory sources.
   */
  private testKindChecks(st: Record<string, unknown>, i: number, kind: string, envNames: string[], misspelt: (key: string) => boolean): void {
    const base = ['pipeline', 'stages', String(i)];
    for (const [key, owner] of Object.entries(KIND_KEYS)) {
      if (own(st, key) === undefined || kind === owner) continue;
      this.add(
        'invalid-value',
        this.keyOffsets(this.locate([...base, key])),
        `"${key}" is for stages of kind ${owner}, and ${this.stageNoun(i)} is of kind ${kind}`,
        `add "kind: ${owner}" to the stage, or remove "${key}"`,
      );
    }
    const required = (key: string) => {
      if (own(st, key) === undefined && !misspelt(key)) this.missingKey(base, key);
    };
    if (COMMAND_KINDS.includes(kind)) required('run');
    // A scan stage's settings all have defaults; the other kinds need theirs.
    const settings = Object.keys(KIND_KEYS).find((key) => KIND_KEYS[key] === kind);
    if (settings && kind !== 'scan') required(settings);
    if (kind === 'smoke') this.probeChecks(st, base);
    if (kind === 'integration') this.serviceChecks(st, base);
    if (kind === 'matrix') this.matrixChecks(st, i, base);
    if (kind === 'load') this.loadChecks(st, i, base);
    if (kind === 'scan') this.scanChecks(st, base);
    if (!TESTED_KINDS.includes(kind)) return;
    const env = own(st, 'environment');
    if (env === undefined) {
      if (!misspelt('environment')) this.missingKey(base, 'environment');
    } else if (typeof env === 'string' && !envNames.includes(env)) {
      this.add(
        'invalid-value',
        this.valueOffsets(this.locate([...base, 'environment'])),
        `${this.stageNoun(i)} tests ${q(env)}, but no environment has that name`,
        environmentFix(env, envNames),
      );
    }
  }

  /** A request (a probe, a load) names one target: `path` on the environment, or an absolute `url`. */
  private targetCheck(o: Record<string, unknown>, at: string[], what: string): void {
    const hasPath = own(o, 'path') !== undefined;
    const hasUrl = own(o, 'url') !== undefined;
    if (hasPath && hasUrl) {
      this.add('invalid-value', this.keyOffsets(this.locate([...at, 'url'])), `${what} has both "path" and "url"`, 'keep one: "path" on the environment\'s URL, or an absolute "url"');
    } else if (!hasPath && !hasUrl && !Object.keys(o).some((k) => closest(k, ['path', 'url']))) {
      this.add('missing-key', this.firstLine(this.locate(at).node), `${what} has no "path"`, 'add "path: /healthz" (a path on the environment\'s URL), or an absolute "url"');
    }
  }

  private probeChecks(st: Record<string, unknown>, base: string[]): void {
    const probes = own(st, 'probes');
    if (!Array.isArray(probes)) return;
    probes.forEach((p, j) => {
      if (!isPlainObject(p)) return;
      const at = [...base, 'probes', String(j)];
      this.targetCheck(p, at, this.noun(at));
      const matches = own(p, 'matches');
      if (typeof matches !== 'string') return;
      try {
        new RegExp(matches);
      } catch (e) {
        const reason = (e as Error).message.replace(/^Invalid regular expression: /, '');
        this.add('invalid-value', this.valueOffsets(this.locate([...at, 'matches'])), `"matches" of ${this.noun(at)} is not a regular expression: ${reason}`, 'write a JavaScript regular expression, e.g. "matches: ^ok$"');
      }
    });
  }

  private serviceChecks(st: Record<string, unknown>, base: string[]): void {
    const services = own(st, 'services');
    if (!isPlainObject(services)) return;
    const prefixes = new Map<string, string>();
    for (const [name, s] of Object.entries(services)) {
      const at = [...base, 'services', name];
      const prefix = serviceVariablePrefix(name);
      const other = prefixes.get(prefix);
      if (other !== undefined) {
        this.add('duplicate-name', this.keyOffsets(this.locate(at)), `services ${q(other)} and ${q(name)} would both set ${prefix}_HOST, ${prefix}_PORT and ${prefix}_URL`, `rename one of them`);
      }
      prefixes.set(prefix, name);
      const health = isPlainObject(s) ? own(s, 'health') : undefined;
      if (!isPlainObject(health)) continue;
      const checks = ['http', 'tcp', 'command'].filter((k) => own(health, k) !== undefined);
      if (checks.length > 1) {
        this.add('invalid-value', this.keyOffsets(this.locate([...at, 'health', checks[1]])), `"health" of ${this.noun(at)} has both "${checks[0]}" and "${checks[1]}"`, 'keep one check: http, tcp or command');
      } else if (own(health, 'tcp') === false) {
        this.add('invalid-value', this.valueOffsets(this.locate([...at, 'health', 'tcp'])), `"tcp: false" of ${this.noun(at)} leaves no way to tell the service is ready`, 'write "tcp: true", or an "http" or "command" check');
      }
    }
  }

  private matrixChecks(st: Record<string, unknown>, i: number, base: string[]): void {
    const matrix = own(st, 'matrix');
    const axesIn = isPlainObject(matrix) ? own(matrix, 'axes') : undefined;
    if (!isPlainObject(matrix) || !isPlainObject(axesIn)) return;
    const at = [...base, 'matrix'];
    const axes = this.matrixAxes(matrix, at);
    for (const axis of axes) {
      axis.values.forEach((v, k) => {
        if (axis.values.indexOf(v) !== k) {
          this.add('duplicate-name', this.valueOffsets(this.locate([...at, 'axes', axis.name, String(k)])), `axis ${q(axis.name)} lists ${q(v)} twice`, `remove the second ${q(v)}`);
        }
      });
    }
    for (const list of ['exclude', 'optional']) {
      const entries = own(matrix, list);
      if (!Array.isArray(entries)) continue;
      entries.forEach((entry, j) => {
        if (!isPlainObject(entry)) return;
        for (const [key, value] of Object.entries(entry)) {
          const where = [...at, list, String(j), key];
          const axis = axes.find((a) => a.name === key);
          if (!axis) {
            const near = closest(key, axes.map((a) => a.name));
            this.add('unknown-key', this.keyOffsets(this.locate(where)), `"${list}" names the axis ${q(key)}, but the matrix has no such axis`, near ? `did you mean "${near}"?` : `name one of the axes: ${axes.map((a) => a.name).join(', ')}`);
            continue;
          }
          const written = this.scalarText(value, where);
          if (!axis.values.includes(written)) {
            const near = closest(written, axis.values);
            this.add('invalid-value', this.valueOffsets(this.locate(where)), `"${list}" gives ${key} the value ${q(written)}, which axis ${q(key)} does not list`, near ? `did you mean "${near}"?` : `write one of ${joinOr(axis.values.map(quoteValue))}`);
          }
        }
      });
    }
    if (this.diagnostics.some((d) => d.severity === 'error')) return;
    const cells = matrixCells(axes, this.matrixEntries(matrix, at, 'exclude'), []).length;
    if (cells === 0) {
      this.add('invalid-value', this.keyOffsets(this.locate(at)), `"exclude" leaves ${this.stageNoun(i)} no combination to run`, 'remove an entry of "exclude"');
    } else if (cells > MAX_MATRIX_CELLS) {
      this.add('invalid-value', this.keyOffsets(this.locate(at)), `${this.stageNoun(i)} has ${cells} combinations; at most ${MAX_MATRIX_CELLS} may run`, 'remove values from the axes, or leave combinations out with "exclude"');
    }
  }

  private loadChecks(st: Record<string, unknown>, i: number, base: string[]): void {
    const load = own(st, 'load');
    if (!isPlainObject(load)) return;
    const at = [...base, 'load'];
    this.targetCheck(load, at, `the load of ${this.stageNoun(i)}`);
    const thresholds = own(load, 'thresholds');
    if (!isPlainObject(thresholds)) return;
    for (const [metric, expr] of Object.entries(thresholds)) {
      if (typeof expr !== 'string' || !THRESHOLD_EXAMPLES[metric as LoadMetric]) continue;
      const parsed = parseThreshold(metric, expr);
      if (parsed.ok) continue;
      this.add(
        'invalid-value',
        this.valueOffsets(this.locate([...at, 'thresholds', metric])),
        `threshold ${q(metric)} of ${this.stageNoun(i)}: ${parsed.error}`,
        `write ${metric}: "${THRESHOLD_EXAMPLES[metric as LoadMetric]}"`,
      );
    }
  }

  private scanChecks(st: Record<string, unknown>, base: string[]): void {
    const scan = own(st, 'scan');
    const sources = isPlainObject(scan) ? own(scan, 'sources') : undefined;
    if (!Array.isArray(sources)) return;
    sources.forEach((src, j) => {
      if (!isPlainObject(src)) return;
      const at = [...base, 'scan', 'sources', String(j)];
      const keys = Object.keys(src).filter((k) => SOURCE_KEYS.includes(k));
      if (keys.length > 1) {
        this.add('invalid-value', this.keyOffsets(this.locate([...at, keys[1]])), `"sources" entry ${j + 1} has both "${keys[0]}" and "${keys[1]}"`, 'write each source as its own entry: "- osv: advisories", "- npm-audit: true"');
      } else if (Object.keys(src).length === 0) {
        this.add('missing-key', this.firstLine(this.locate(at).node), `"sources" entry ${j + 1} names no source`, 'write "osv: <folder>", "osv-api: true" or "npm-audit: true"');
      }
    });
  }

  /**
   * Deploys to production (an environment named production or prod, or promoted by hand) should
   * pass the pipeline's acceptance stages: warns about one that neither needs an acceptance stage
   * nor is what one tests.
   */
  private acceptanceGate(list: unknown[], edges: { to: number }[][]): void {
    const acceptance = list.flatMap((st, i) => (isPlainObject(st) && own(st, 'kind') === 'acceptance' ? [i] : []));
    if (acceptance.length === 0) return;
    const envs = this.get(['environments']);
    list.forEach((st, i) => {
      if (!isPlainObject(st) || own(st, 'kind') !== 'deploy') return;
      const env = own(st, 'environment');
      if (typeof env !== 'string' || !isPlainObject(envs) || !Object.prototype.hasOwnProperty.call(envs, env)) return;
      const settings = own(envs, env);
      const promotion = isPlainObject(settings) ? own(settings, 'promotion') : undefined;
      if (!/^(production|prod)$/i.test(env) && (promotion ?? 'manual') !== 'manual') return;
      if (acceptance.some((a) => this.reaches(i, a, edges) || this.reaches(a, i, edges))) return;
      const names = acceptance.map((a) => this.get(['pipeline', 'stages', String(a), 'name'])).filter((n): n is string => typeof n === 'string');
      const needs = this.locate(['pipeline', 'stages', String(i), 'needs']);
      this.add(
        'invalid-value',
        needs.found ? this.keyOffsets(needs) : this.valueOffsets(this.locate(['pipeline', 'stages', String(i), 'name'])),
        `${this.stageNoun(i)} deploys to ${q(env)} without passing the acceptance stage ${q(names[0] ?? 'acceptance')}`,
        `add "${names[0] ?? 'acceptance'}" to its needs`,
        { severity: 'warning' },
      );
    });
  }

  /** A scalar as written: numbers keep their spelling (`1.10` stays "1.10"). */
  private scalarText(v: unknown, at: readonly string[]): string {
    if (typeof v === 'string') return v;
    const node = this.locate(at).node;
    const written = isScalar(node) && node.type === 'PLAIN' && node.range ? this.text.slice(node.range[0], node.range[1]).trim() : '';
    return written.length > 0 ? written : String(v);
  }

  private stringMap(v: unknown, at: readonly string[]): Record<string, string> {
    if (!isPlainObject(v)) return {};
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.scalarText(x, [...at, k])]));
  }

  private sourceLocation(at: readonly string[]): SourceLocation {
    const r = this.range(this.valueOffsets(this.locate(at)));
    return { file: this.file, line: r.start.line, column: r.start.column };
  }

  private matrixAxes(matrix: Record<string, unknown>, at: readonly string[]): MatrixConfig['axes'] {
    const axes = own(matrix, 'axes') as Record<string, unknown[]>;
    return Object.entries(axes).map(([name, values]) => ({
      name,
      values: (Array.isArray(values) ? values : []).map((v, k) => this.scalarText(v, [...at, 'axes', name, String(k)])),
    }));
  }

  private matrixEntries(matrix: Record<string, unknown>, at: readonly string[], list: string): Record<string, string>[] {
    const entries = own(matrix, list);
    return Array.isArray(entries) ? entries.map((e, j) => this.stringMap(e, [...at, list, String(j)])) : [];
  }

  /** The model of what the test kinds declare, with every default. */
  private buildTestKind(stage: StageConfig, st: Record<string, unknown>, i: number): void {
    const at = ['pipeline', 'stages', String(i)];
    switch (stage.kind) {
      case 'smoke':
        stage.probes = ((own(st, 'probes') as unknown[] | undefined) ?? []).map((p, j) => this.buildProbe(p, [...at, 'probes', String(j)]));
        stage.verifies ??= this.deployParent(stage);
        break;
      case 'integration':
        stage.services = Object.entries((own(st, 'services') as Record<string, Record<string, unknown>> | undefined) ?? {}).map(([name, s]) =>
          this.buildService(name, s, [...at, 'services', name]),
        );
        break;
      case 'matrix': {
        const m = own(st, 'matrix') as Record<string, unknown>;
        const axes = this.matrixAxes(m, [...at, 'matrix']);
        const exclude = this.matrixEntries(m, [...at, 'matrix'], 'exclude');
        const optional = this.matrixEntries(m, [...at, 'matrix'], 'optional');
        stage.matrix = { axes, exclude, optional, cells: matrixCells(axes, exclude, optional) };
        break;
      }
      case 'load':
        stage.load = this.buildLoad(own(st, 'load') as Record<string, unknown>, [...at, 'load']);
        break;
      case 'scan':
        stage.scan = buildScan((own(st, 'scan') as Record<string, unknown> | undefined) ?? {});
        break;
      default:
        break;
    }
  }

  /** The deploy stage a smoke stage follows (by need), which it verifies unless it says otherwise. */
  private deployParent(stage: StageConfig): string | undefined {
    const all = (this.get(['pipeline', 'stages']) as Record<string, unknown>[]).filter(isPlainObject);
    const deploys = all.filter((s) => own(s, 'kind') === 'deploy' && stage.needs.includes(own(s, 'name') as string));
    const same = deploys.filter((s) => own(s, 'environment') === stage.environment);
    const pick = same.length === 1 ? same : deploys;
    return pick.length === 1 ? (own(pick[0], 'name') as string) : undefined;
  }

  private buildProbe(p: unknown, at: string[]): SmokeProbe {
    const o = typeof p === 'string' ? { path: p } : (p as Record<string, unknown>);
    const method = (own(o, 'method') as string | undefined) ?? 'GET';
    const target = (own(o, 'path') ?? own(o, 'url')) as string;
    const status = own(o, 'status') as number | number[] | undefined;
    const contains = own(o, 'contains') as string | string[] | undefined;
    const within = own(o, 'within') as number | string | undefined;
    return {
      name: (own(o, 'name') as string | undefined) ?? `${method} ${target}`,
      path: (own(o, 'path') as string | undefined) ?? null,
      url: (own(o, 'url') as string | undefined) ?? null,
      method,
      headers: this.stringMap(own(o, 'headers'), [...at, 'headers']),
      body: (own(o, 'body') as string | undefined) ?? null,
      status: status === undefined ? [200] : typeof status === 'number' ? [status] : [...status],
      contains: contains === undefined ? [] : typeof contains === 'string' ? [contains] : [...contains],
      matches: (own(o, 'matches') as string | undefined) ?? null,
      json: { ...((own(o, 'json') as Record<string, unknown> | undefined) ?? {}) },
      withinMs: within === undefined ? null : (durationToMs(within) ?? null),
      timeoutMs: durationToMs((own(o, 'timeout') as number | string | undefined) ?? '5s') ?? 5000,
      location: this.sourceLocation(at),
    };
  }

  private buildService(name: string, s: Record<string, unknown>, at: string[]): ServiceConfig {
    const shell = (c: string | string[]) => (typeof c === 'string' ? ['sh', '-c', c] : [...c]);
    const command = own(s, 'command') as string | string[] | undefined;
    const h = (own(s, 'health') as Record<string, unknown> | undefined) ?? {};
    return {
      name,
      image: own(s, 'image') as string,
      command: command === undefined ? [] : shell(command),
      env: this.stringMap(own(s, 'env'), [...at, 'env']),
      port: own(s, 'port') as number,
      health:
        typeof own(h, 'http') === 'string'
          ? { kind: 'http', path: own(h, 'http') as string }
          : own(h, 'command') !== undefined
            ? { kind: 'command', command: shell(own(h, 'command') as string | string[]) }
            : { kind: 'tcp' },
      timeoutMs: durationToMs((own(s, 'timeout') as number | string | undefined) ?? '30s') ?? 30_000,
    };
  }

  private buildLoad(l: Record<string, unknown>, at: string[]): LoadConfig {
    const thresholds = (own(l, 'thresholds') as Record<string, string> | undefined) ?? {};
    return {
      path: (own(l, 'path') as string | undefined) ?? null,
      url: (own(l, 'url') as string | undefined) ?? null,
      method: (own(l, 'method') as string | undefined) ?? 'GET',
      headers: this.stringMap(own(l, 'headers'), [...at, 'headers']),
      body: (own(l, 'body') as string | undefined) ?? null,
      connections: (own(l, 'connections') as number | undefined) ?? 10,
      rate: (own(l, 'rate') as number | undefined) ?? null,
      durationMs: durationToMs((own(l, 'duration') as number | string | undefined) ?? '10s') ?? 10_000,
      thresholds: Object.entries(thresholds).map(([metric, expr]) => ({
        metric: metric as LoadMetric,
        expr,
        location: this.sourceLocation([...at, 'thresholds', metric]),
      })),
    };
  }

  private buildEnvironments(): EnvironmentConfig[] {
    const envs = own(this.data as Record<string, unknown>, 'environments');
    if (!isPlainObject(envs)) return [];
    // Written order: the YAML mapping's keys first (a JS object would move "1" before "a").
    const order: string[] = [];
    const node = this.locate(['environments']).node;
    if (isMap(node)) {
      for (const item of node.items) {
        const k = this.keyString(item.key);
        if (k !== undefined && !isMergeKey(item.key) && Object.prototype.hasOwnProperty.call(envs, k) && !order.includes(k)) order.push(k);
      }
    }
    for (const k of Object.keys(envs)) if (!order.includes(k)) order.push(k);
    return order.map((name) => {
      const e = (own(envs, name) as Record<string, unknown> | null) ?? {};
      const health = (own(e, 'health') as Record<string, unknown> | undefined) ?? {};
      const timeoutMs = durationToMs((own(health, 'timeout') as number | string | undefined) ?? '30s') ?? 30_000;
      const intervalMs = durationToMs((own(health, 'interval') as number | string | undefined) ?? '500ms') ?? 500;
      const start = own(e, 'start') as string | string[] | undefined;
      const envIn = (own(e, 'env') as Record<string, unknown> | undefined) ?? {};
      const reconcile = (own(e, 'reconcile') as Record<string, unknown> | undefined) ?? {};
      const imageUpdate = own(e, 'imageUpdate') as Record<string, unknown> | undefined;
      return {
        name,
        runtime: (own(e, 'runtime') as EnvironmentConfig['runtime'] | undefined) ?? 'process',
        promotion: (own(e, 'promotion') as EnvironmentConfig['promotion'] | undefined) ?? 'manual',
        port: (own(e, 'port') as number | undefined) ?? null,
        strategy: (own(e, 'strategy') as EnvironmentConfig['strategy'] | undefined) ?? 'recreate',
        health:
          typeof own(health, 'http') === 'string'
            ? { kind: 'http', path: own(health, 'http') as string, timeoutMs, intervalMs }
            : typeof own(health, 'command') === 'string'
              ? { kind: 'command', command: own(health, 'command') as string, timeoutMs, intervalMs }
              : { kind: 'tcp', timeoutMs, intervalMs },
        start: start === undefined ? [] : typeof start === 'string' ? ['/bin/sh', '-c', start] : [...start],
        containerPort: (own(e, 'containerPort') as number | undefined) ?? 8080,
        env: Object.fromEntries(Object.entries(envIn).map(([k, v]) => [k, String(v)])),
        replicas: (own(e, 'replicas') as number | undefined) ?? 1,
        preview: own(e, 'preview') === true,
        settings: Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'runtime' && k !== 'promotion')),
        reconcile: {
          selfHeal: own(reconcile, 'selfHeal') === true,
          prune: own(reconcile, 'prune') === true,
          manual: own(reconcile, 'manual') === true,
        },
        imageUpdate: isPlainObject(imageUpdate)
          ? {
              repository: own(imageUpdate, 'repository') as string,
              semver: (own(imageUpdate, 'semver') as string | undefined) ?? null,
              pattern: (own(imageUpdate, 'pattern') as string | undefined) ?? null,
              intervalMs: durationToMs((own(imageUpdate, 'interval') as number | string | undefined) ?? '1m') ?? 60_000,
            }
          : null,
      };
    });
  }

  private buildWatch(): ConveyorConfig['watch'] {
    const w = (own(this.data as Record<string, unknown>, 'watch') as Record<string, unknown> | undefined) ?? {};
    return {
      include: [...((own(w, 'include') as string[] | undefined) ?? ['**/*'])],
      exclude: [...((own(w, 'exclude') as string[] | undefined) ?? [])],
      stages: unique((own(w, 'stages') as string[] | undefined) ?? []),
      tests: [...((own(w, 'tests') as string[] | undefined) ?? [])],
    };
  }
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

/** Keys that belong to one stage kind. */
const KIND_KEYS: Record<string, string> = { probes: 'smoke', services: 'integration', matrix: 'matrix', load: 'load', scan: 'scan' };
/** Kinds that test an environment (`environment:`). */
const TESTED_KINDS = ['smoke', 'acceptance', 'load'];
/** Test kinds that run the commands of `run`. */
const COMMAND_KINDS = ['integration', 'acceptance', 'matrix'];
const MAX_MATRIX_CELLS = 64;
const SOURCE_KEYS = ['osv', 'osv-api', 'npm-audit'];
const THRESHOLD_EXAMPLES: Record<LoadMetric, string> = {
  p50: '< 100ms',
  p90: '< 200ms',
  p95: '< 200ms',
  p99: '< 500ms',
  max: '< 1s',
  mean: '< 100ms',
  errorRate: '< 1%',
  throughput: '>= 100/s',
};

/** What to write instead of an environment name that no environment has. */
function environmentFix(env: string, envNames: readonly string[]): string {
  const near = closest(env, envNames);
  if (near) return `did you mean "${near}"?`;
  if (envNames.length === 0) return `declare it under "environments:", e.g. "environments: { ${env}: { runtime: process } }"`;
  return `name one of the environments: ${envNames.slice(0, 10).join(', ')}${envNames.length > 10 ? ', …' : ''}`;
}

/** The prefix of a service's variables: `db` gives DB_HOST, DB_PORT and DB_URL. */
export function serviceVariablePrefix(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/**
 * Every combination of the axes (the first axis varies slowest), without those matching an
 * `exclude` entry; a cell matching an `optional` entry may fail. An entry matches a cell when
 * each of its keys has the cell's value.
 */
export function matrixCells(axes: MatrixConfig['axes'], exclude: Record<string, string>[], optional: Record<string, string>[]): MatrixConfig['cells'] {
  const matches = (values: Record<string, string>, entry: Record<string, string>) => Object.entries(entry).every(([k, v]) => values[k] === v);
  let cells: Record<string, string>[] = [{}];
  for (const axis of axes) cells = cells.flatMap((c) => axis.values.map((v) => ({ ...c, [axis.name]: v })));
  return cells
    .filter((values) => !exclude.some((e) => matches(values, e)))
    .map((values) => ({ values, optional: optional.some((o) => matches(values, o)) }));
}

/** A scan stage's settings with their defaults: package-lock.json, checked with npm audit, failing on high. */
function buildScan(s: Record<string, unknown>): ScanConfig {
  const lockfiles = own(s, 'lockfiles') as string | string[] | undefined;
  const sources = (own(s, 'sources') as Record<string, unknown>[] | undefined) ?? [{ 'npm-audit': true }];
  return {
    lockfiles: lockfiles === undefined ? ['package-lock.json'] : typeof lockfiles === 'string' ? [lockfiles] : [...lockfiles],
    sources: sources.map((src) => {
      const osv = own(src, 'osv');
      if (typeof osv === 'string') return { kind: 'osv-folder', path: osv };
      const api = own(src, 'osv-api');
      if (api !== undefined) return { kind: 'osv-api', url: typeof api === 'string' ? api : 'https://api.osv.dev' };
      const registry = own(src, 'npm-audit');
      return { kind: 'npm-audit', registry: typeof registry === 'string' ? registry : null };
    }),
    failOn: (own(s, 'failOn') as ScanConfig['failOn'] | undefined) ?? 'high',
    unreachable: (own(s, 'unreachable') as ScanConfig['unreachable'] | undefined) ?? 'fail',
  };
}
