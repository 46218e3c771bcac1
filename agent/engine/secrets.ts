import * as fs from 'node:fs';
import * as path from 'node:path';

/** What a masked secret looks like in logs, events and API answers. */
export const MASK = '***';

/** Values shorter than this are not masked: masking "1" or "ok" would garble every log. */
const MIN_SECRET_LENGTH = 3;

export interface SecretValues {
  /** Name to value, for the names the config declares that have a value. */
  values: Map<string, string>;
  /** Declared names with no value anywhere: the run log says so. */
  missing: string[];
}

/**
 * Resolves the config's secret names. A value comes from the agent's environment, or else from
 * `.conveyor/secrets.env` (KEY=VALUE lines; `#` comments), which lives in the git-ignored
 * `.conveyor/` folder and so never comes from git.
 */
export function resolveSecrets(names: readonly string[], workspace: string, env: NodeJS.ProcessEnv = process.env): SecretValues {
  const fromFile = readSecretsFile(path.join(workspace, '.conveyor', 'secrets.env'));
  const values = new Map<string, string>();
  const missing: string[] = [];
  for (const name of names) {
    const v = env[name] ?? fromFile.get(name);
    if (v === undefined || v === '') missing.push(name);
    else values.set(name, v);
  }
  return { values, missing };
}

function readSecretsFile(file: string): Map<string, string> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    out.set(line.slice(0, eq).trim().replace(/^export\s+/, ''), value);
  }
  return out;
}

/**
 * Masks secret values in a text stream. A secret split across two chunks is still caught: the
 * masker holds back the last (longest needle - 1) characters until more text or the end arrives.
 * Besides each value it masks the forms a program is likely to print it in: base64, URL- and
 * JSON-escaped.
 */
export class Masker {
  private readonly needles: string[];
  private readonly pattern: RegExp | null;
  private readonly holdBack: number;
  private tail = '';

  constructor(secrets: Iterable<string>) {
    const set = new Set<string>();
    for (const s of secrets) {
      if (s.length < MIN_SECRET_LENGTH) continue;
      for (const form of [s, Buffer.from(s).toString('base64'), encodeURIComponent(s), JSON.stringify(s).slice(1, -1)]) {
        set.add(form);
        // base64 of a value padded with '=' also appears without the padding.
        if (form.endsWith('=')) set.add(form.replace(/=+$/, ''));
      }
    }
    // Longest first, so that a longer form is replaced before a shorter one inside it.
    this.needles = [...set].filter((n) => n.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
    this.pattern = this.needles.length ? new RegExp(this.needles.map(escapeRegExp).join('|'), 'g') : null;
    this.holdBack = this.needles.length ? this.needles[0].length - 1 : 0;
  }

  get active(): boolean {
    return this.pattern !== null;
  }

  /** Masks a whole text at once. */
  mask(text: string): string {
    return this.pattern ? text.replace(this.pattern, MASK) : text;
  }

  /** Feeds a chunk; returns what can safely be emitted now. */
  push(chunk: string): string {
    if (!this.pattern) return chunk;
    const text = this.tail + chunk;
    // Find the last match that could still grow: keep everything from the earliest point a needle
    // could start without being complete.
    let cut = Math.max(0, text.length - this.holdBack);
    const masked = this.maskUpTo(text, cut);
    cut = masked.consumed;
    this.tail = text.slice(cut);
    return masked.out;
  }

  /** Returns the rest held back, masked. */
  end(): string {
    const rest = this.mask(this.tail);
    this.tail = '';
    return rest;
  }

  /**
   * Masks `text` and emits up to `limit` characters of it; a match that starts before `limit`
   * is emitted whole, so the emitted text never ends inside a secret.
   */
  private maskUpTo(text: string, limit: number): { out: string; consumed: number } {
    const re = this.pattern!;
    re.lastIndex = 0;
    let out = '';
    let pos = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (m.index >= limit) break;
      out += text.slice(pos, m.index) + MASK;
      pos = m.index + m[0].length;
    }
    const consumed = Math.max(pos, limit);
    out += text.slice(pos, consumed);
    return { out, consumed };
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
