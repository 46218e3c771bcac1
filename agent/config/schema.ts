/**
 * The JSON Schema of conveyor.yml, compiled once, and the helpers that read it to word
 * diagnostics: what a key expects, an example value, which keys a mapping allows.
 *
 * Beside the standard keywords the schema uses two annotations that validation ignores:
 * `patternErrorMessage` (the editor's convention: what a failed pattern means, as "must ...")
 * and `x-expected` (a noun phrase for a value that the generic wording would say poorly).
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import schemaJson = require('./conveyor.schema.json');

/** A JSON Schema node, as far as the analyzer reads it. */
export interface SchemaNode {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  propertyNames?: SchemaNode;
  required?: string[];
  items?: SchemaNode;
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
  allOf?: SchemaNode[];
  minimum?: number;
  maximum?: number;
  minItems?: number;
  minLength?: number;
  pattern?: string;
  patternErrorMessage?: string;
  'x-expected'?: string;
  description?: string;
  examples?: unknown[];
  default?: unknown;
  definitions?: Record<string, SchemaNode>;
}

export const SCHEMA: SchemaNode = schemaJson as unknown as SchemaNode;

let compiled: ValidateFunction | undefined;

/** The compiled validator (all errors, with the data and schema of each). */
export function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({
      allErrors: true,
      verbose: true,
      strict: true,
      strictNumbers: true,
      allowUnionTypes: true,
    });
    ajv.addVocabulary(['patternErrorMessage', 'x-expected']);
    compiled = ajv.compile(SCHEMA);
  }
  return compiled;
}

/** Candidate locations of the schema file: next to this module (out/ or a bundle), then the source. */
function schemaPathCandidates(): string[] {
  return [
    path.join(__dirname, 'conveyor.schema.json'),
    path.resolve(__dirname, '..', '..', '..', 'agent', 'config', 'conveyor.schema.json'),
    path.resolve(__dirname, '..', 'agent', 'config', 'conveyor.schema.json'),
  ];
}

export function findSchemaPath(): string {
  const candidates = schemaPathCandidates();
  for (const c of candidates) {
    try {
      if (fs.statSync(c).isFile()) return c;
    } catch {
      // try the next one
    }
  }
  return candidates[0];
}

/** Follows `$ref` (local `#/definitions/...` only). */
export function deref(s: SchemaNode | undefined): SchemaNode | undefined {
  let cur = s;
  for (let i = 0; cur && cur.$ref !== undefined && i < 20; i++) {
    const m = /^#\/definitions\/(.+)$/.exec(cur.$ref);
    cur = m ? SCHEMA.definitions?.[m[1]] : undefined;
  }
  return cur;
}

/** The resolved schemas a node stands for: itself, its `$ref` target and its `allOf` parts. */
function facets(s: SchemaNode | undefined, depth = 0): SchemaNode[] {
  if (!s || depth > 10) return [];
  const out: SchemaNode[] = [s];
  const r = s.$ref !== undefined ? deref(s) : undefined;
  if (r) out.push(...facets(r, depth + 1));
  for (const part of s.allOf ?? []) out.push(...facets(part, depth + 1));
  return out;
}

/** The first value of `key` among a node's facets (its own first, then what it refers to). */
export function pick<K extends keyof SchemaNode>(s: SchemaNode | undefined, key: K): SchemaNode[K] | undefined {
  for (const f of facets(s)) {
    if (f[key] !== undefined) return f[key];
  }
  return undefined;
}

/** The JSON type of a value, as JSON Schema names it. */
export function jsonType(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'string' || typeof v === 'boolean') return typeof v;
  return 'object';
}

/** Whether a schema's `type` (if any) admits the value. */
export function typeAdmits(s: SchemaNode | undefined, v: unknown): boolean {
  const t = pick(s, 'type');
  if (t === undefined) return true;
  const types = Array.isArray(t) ? t : [t];
  const actual = jsonType(v);
  return types.some(
    (x) => x === actual || (x === 'number' && actual === 'integer' && Number.isFinite(v as number)),
  );
}

/** The schema of the value at a data path (property names and list indexes), unresolved. */
export function schemaAt(segments: readonly string[], data?: unknown): SchemaNode | undefined {
  let s: SchemaNode | undefined = SCHEMA;
  let value: unknown = data;
  for (const seg of segments) {
    s = childSchema(s, seg, value);
    if (!s) return undefined;
    value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[seg] : undefined;
  }
  return s;
}

function childSchema(s: SchemaNode | undefined, seg: string, value: unknown, depth = 0): SchemaNode | undefined {
  if (!s || depth > 10) return undefined;
  const isIndex = Array.isArray(value) || (value === undefined && /^\d+$/.test(seg));
  for (const f of facets(s)) {
    if (!isIndex && f.properties && Object.prototype.hasOwnProperty.call(f.properties, seg)) return f.properties[seg];
    if (isIndex && f.items) return f.items;
    if (!isIndex && f.additionalProperties && typeof f.additionalProperties === 'object') return f.additionalProperties;
  }
  for (const f of facets(s)) {
    for (const branch of [...(f.anyOf ?? []), ...(f.oneOf ?? [])]) {
      if (value !== undefined && !typeAdmits(branch, value)) continue;
      const c = childSchema(branch, seg, value, depth + 1);
      if (c) return c;
    }
  }
  return undefined;
}

/** The keys an object schema allows, in schema order. */
export function allowedKeys(s: SchemaNode | undefined): string[] {
  const keys: string[] = [];
  for (const f of facets(s)) {
    for (const k of Object.keys(f.properties ?? {})) if (!keys.includes(k)) keys.push(k);
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Wording
// ---------------------------------------------------------------------------------------------

/** `"a"`, `"a" or "b"`, `"a", "b" or "c"`. */
export function joinOr(parts: readonly string[]): string {
  const uniq = [...new Set(parts)];
  if (uniq.length <= 1) return uniq[0] ?? '';
  return `${uniq.slice(0, -1).join(', ')} or ${uniq[uniq.length - 1]}`;
}

export function quoteValue(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

const TYPE_NOUNS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  null: 'empty',
};

const PLURALS: Record<string, string> = {
  'a string': 'strings',
  'a number': 'numbers',
  'an integer': 'integers',
  'a mapping': 'mappings',
  'a list': 'lists',
};

function range(noun: string, min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `${noun} from ${min} to ${max}`;
  if (min !== undefined) return `${noun} of ${min} or more`;
  if (max !== undefined) return `${noun} of ${max} or less`;
  return noun;
}

/** A noun phrase for what a schema accepts: "an integer from 0 to 10", "a string or a list of strings". */
export function expectedPhrase(s: SchemaNode | undefined, depth = 0): string {
  if (!s || depth > 10) return 'a valid value';
  const custom = pick(s, 'x-expected');
  if (custom) return custom;
  const en = pick(s, 'enum');
  if (en) return joinOr(en.map(quoteValue));
  const c = pick(s, 'const');
  if (c !== undefined) return quoteValue(c);
  const alternatives = pick(s, 'anyOf') ?? pick(s, 'oneOf');
  if (alternatives) return joinOr(alternatives.map((b) => expectedPhrase(b, depth + 1)));
  const t = pick(s, 'type');
  if (t === undefined) return 'a valid value';
  const types = Array.isArray(t) ? t : [t];
  if (types.length > 1) {
    return joinOr(types.map((x) => (x === 'boolean' ? 'a boolean' : (TYPE_NOUNS[x] ?? x))));
  }
  const type = types[0];
  if (type === 'integer' || type === 'number') {
    return range(TYPE_NOUNS[type], pick(s, 'minimum'), pick(s, 'maximum'));
  }
  if (type === 'array') {
    const item = expectedPhrase(pick(s, 'items'), depth + 1);
    const list = PLURALS[item] ? `a list of ${PLURALS[item]}` : 'a list';
    return (pick(s, 'minItems') ?? 0) > 0 ? list.replace(/^a list/, 'a non-empty list') : list;
  }
  return TYPE_NOUNS[type] ?? 'a valid value';
}

/** The first example of a schema, if it has one. */
export function exampleOf(s: SchemaNode | undefined): unknown {
  const ex = pick(s, 'examples');
  return ex && ex.length > 0 ? ex[0] : undefined;
}

/** A value in YAML flow style, on one line: `[build, test]`, `{name: test, run: npm test}`. */
export function flowYaml(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(flowYaml).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${flowScalar(k)}: ${flowYaml(x)}`)
      .join(', ')}}`;
  }
  return flowScalar(v);
}

function flowScalar(v: unknown): string {
  if (typeof v !== 'string') return String(v);
  const plain = /^[A-Za-z0-9_./][A-Za-z0-9_./*\- ]*$/.test(v) && !/^(true|false|null|~|yes|no|on|off)$/i.test(v);
  const numeric = /^[-+.]?\d/.test(v) && !/[A-Za-z]/.test(v);
  return plain && !numeric && !v.endsWith(' ') ? v : JSON.stringify(v);
}
