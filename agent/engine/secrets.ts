import * as fs from 'node:fs';
import * as path from 'node:path';

/** What a masked secret looks like in logs, events and API answers. */
export const MASK = '***';

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
 * Masks secret values in text, whole or as a stream. Besides each value it masks the forms a
 * program is likely to print it in: URL- and JSON-escaped, and base64, whether the value was
 * encoded alone or inside a longer text (HTTP Basic credentials, `echo $TOKEN | base64`), and
 * wrapped over lines as `base64` (76 columns) and PEM (64) print it.
 *
 * A stream (push, then end) holds back the text at its end that could be the start of a form, so
 * that a value split across two writes is still caught. Each stream needs a masker of its own:
 * fork() one, which shares the compiled forms.
 */
export class Masker {
  private readonly secrets: string[];
  private readonly engine: MaskEngine | null;
  private readonly stream: MaskStream | null;

  constructor(secrets: Iterable<string> | Masker) {
    if (secrets instanceof Masker) {
      this.secrets = secrets.secrets;
      this.engine = secrets.engine;
    } else {
      this.secrets = [...new Set(secrets)];
      this.engine = maskEngine(this.secrets, MASK);
    }
    this.stream = this.engine?.open() ?? null;
  }

  get active(): boolean {
    return this.engine !== null;
  }

  /** A masker of the same values for another stream: it holds back its own text. */
  fork(): Masker {
    return new Masker(this);
  }

  /** Masks a whole text at once. */
  mask(text: string): string {
    return this.engine ? this.engine.mask(text) : text;
  }

  /** Feeds a chunk; returns what can safely be emitted now. */
  push(chunk: string): string {
    return this.stream ? this.stream.push(chunk) : chunk;
  }

  /** Returns the rest held back, masked. */
  end(): string {
    return this.stream ? this.stream.end() : '';
  }

  /**
   * A program for `node -e` that copies its stdin to its stdout masked as push and end do, for
   * output that a process of its own must mask (a service instance outlives the agent), and the
   * environment it needs: the values, which never go on a command line (any user can read those).
   * Null when there is nothing to mask.
   */
  relay(): { script: string; env: Record<string, string> } | null {
    if (!this.engine) return null;
    const script = [
      "'use strict';",
      "const fs = require('node:fs');",
      "const { StringDecoder } = require('node:string_decoder');",
      `const stream = (${maskEngine.toString()})(JSON.parse(process.env.${RELAY_SECRETS}), ${JSON.stringify(MASK)}).open();`,
      "const decoder = new StringDecoder('utf8');",
      'const write = (text) => { if (text) fs.writeSync(1, text); };',
      "process.stdin.on('data', (chunk) => write(stream.push(decoder.write(chunk))));",
      "process.stdin.on('end', () => write(stream.push(decoder.end()) + stream.end()));",
    ].join('\n');
    return { script, env: { [RELAY_SECRETS]: JSON.stringify(this.secrets) } };
  }
}

/** The variable that gives a relay (Masker.relay) its values. */
const RELAY_SECRETS = 'CONVEYOR_MASK_VALUES';

type MaskEngine = NonNullable<ReturnType<typeof maskEngine>>;
type MaskStream = ReturnType<MaskEngine['open']>;

/**
 * Compiles the forms of the values once (null when none is long enough to mask) into a whole-text
 * mask and streams that share it. It names nothing outside itself, so that a relay process can run
 * it from its source (Masker.relay). Linear in the text: two regular expressions find the forms,
 * the encoded ones in the text with its wraps taken out; what a stream holds back is found by
 * matching the end of its text against each form's prefixes (Knuth-Morris-Pratt), within the most
 * characters a form can span.
 */
function maskEngine(values: string[], mask: string) {
  /** Values shorter than this are not masked: masking "1" or "ok" would garble every log. */
  const MIN_SECRET_LENGTH = 3;
  /** A piece of a value's base64 inside a longer encoding is masked from this length: shorter ones turn up by chance. */
  const MIN_BASE64_PIECE = 6;
  /**
   * An encoder wraps its lines after many base64 characters in a row (64, 76): a line break inside
   * an encoded form counts as a wrap only after at least this many, so an ordinary line that ends
   * like the start of a form is not held back.
   */
  const WRAP_AFTER = 16;
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  /** Which forms of a value to look for; an encoded one may be wrapped over lines. */
  const forms = new Map<string, boolean>();
  const add = (text: string, wraps: boolean) => {
    if (text.length >= MIN_SECRET_LENGTH) forms.set(text, wraps || (forms.get(text) ?? false));
  };
  for (const value of values) {
    if (value.length < MIN_SECRET_LENGTH) continue;
    add(value, false);
    add(encodeURIComponent(value), false);
    add(JSON.stringify(value).slice(1, -1), false);
    const bytes = Buffer.from(value);
    const base64 = bytes.toString('base64');
    add(base64, true);
    add(base64.replace(/=+$/, ''), true);
    // Inside a longer encoding the value starts 0, 1 or 2 bytes into a 3-byte group: the
    // characters that encode its bits alone are the same whatever comes before and after.
    for (const offset of [0, 1, 2]) {
      const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
      const piece = encoded.slice(Math.ceil((offset * 8) / 6), Math.floor(((offset + bytes.length) * 8) / 6));
      if (piece.length >= MIN_BASE64_PIECE) add(piece, true);
    }
  }
  if (forms.size === 0) return null;
  // Longest first, so that a longer form is replaced before a shorter one inside it.
  const needles = [...forms].map(([text, wraps]) => ({ text, wraps })).sort((a, b) => b.text.length - a.text.length);
  const regexOf = (list: typeof needles) => (list.length ? new RegExp(list.map((n) => escape(n.text)).join('|'), 'g') : null);
  /** The forms as printed, found in the text; the encoded ones, found in the text without its wraps. */
  const findPlain = regexOf(needles.filter((n) => !n.wraps));
  const findEncoded = regexOf(needles.filter((n) => n.wraps));
  /** The most characters a match can span: a wrap (2 characters at most) every WRAP_AFTER. */
  const span = Math.max(...needles.map((n) => (n.wraps ? n.text.length + 2 * (1 + Math.floor(n.text.length / WRAP_AFTER)) : n.text.length)));
  /** For each needle, for each prefix, the longest shorter prefix that also ends it. */
  const fails = needles.map(({ text }) => {
    const fail = new Array<number>(text.length).fill(0);
    for (let i = 1, k = 0; i < text.length; i++) {
      while (k > 0 && text[i] !== text[k]) k = fail[k - 1];
      if (text[i] === text[k]) k++;
      fail[i] = k;
    }
    return fail;
  });
  const isBase64 = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47 || c === 61;
  /** The length of the wrap ("\n" or "\r\n" after enough base64) at text[i], 0 if none; a "\r" that ends the text may be one. */
  const wrapAt = (text: string, i: number): number => {
    const c = text.charCodeAt(i);
    const length = c === 10 ? 1 : c !== 13 ? 0 : i + 1 === text.length ? 1 : text.charCodeAt(i + 1) === 10 ? 2 : 0;
    if (length === 0 || i < WRAP_AFTER) return 0;
    for (let j = i - WRAP_AFTER; j < i; j++) if (!isBase64(text.charCodeAt(j))) return 0;
    return length;
  };
  /** text[from..] without its wraps, and where each of its characters is in the text. */
  const unwrap = (text: string, from: number): { joined: string; at: (j: number) => number } => {
    const wraps: number[] = [];
    for (let i = from; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const w = wrapAt(text, i);
      if (w > 0) {
        wraps.push(i, w);
        i += w - 1;
      }
    }
    if (wraps.length === 0) return { joined: text.slice(from), at: (j) => from + j };
    const at = new Int32Array(text.length - from);
    let joined = '';
    let n = 0;
    let pos = from;
    for (let k = 0; k <= wraps.length; k += 2) {
      const end = k < wraps.length ? wraps[k] : text.length;
      joined += text.slice(pos, end);
      for (let i = pos; i < end; i++) at[n++] = i;
      pos = end + (wraps[k + 1] ?? 0);
    }
    return { joined, at: (j) => at[j] };
  };
  /** The length of the longest end of `s` that begins needle k. */
  const overlap = (s: string, k: number): number => {
    const { text } = needles[k];
    const fail = fails[k];
    let j = 0;
    for (let i = 0; i < s.length; i++) {
      if (j === text.length) j = fail[j - 1];
      while (j > 0 && s[i] !== text[j]) j = fail[j - 1];
      if (s[i] === text[j]) j++;
    }
    return j;
  };
  /** Where the text that could still become a match begins (text.length when none), at `from` or after. */
  const holdFrom = (text: string, from: number): number => {
    const start = Math.max(from, text.length - span);
    const raw = text.slice(start);
    const window = unwrap(text, start);
    let cut = text.length;
    for (let k = 0; k < needles.length; k++) {
      const s = needles[k].wraps ? window.joined : raw;
      const n = overlap(s, k);
      if (n > 0) cut = Math.min(cut, needles[k].wraps ? window.at(s.length - n) : text.length - n);
    }
    return cut;
  };
  /** Masks text[from, cut), and the whole of a match that starts there; returns where that ends. */
  const emit = (text: string, from: number, cut: number): { out: string; done: number } => {
    const found: [number, number][] = [];
    if (findPlain) {
      findPlain.lastIndex = from;
      for (let m = findPlain.exec(text); m && m.index < cut; m = findPlain.exec(text)) found.push([m.index, m.index + m[0].length]);
    }
    if (findEncoded) {
      const { joined, at } = unwrap(text, from);
      findEncoded.lastIndex = 0;
      for (let m = findEncoded.exec(joined); m && at(m.index) < cut; m = findEncoded.exec(joined)) found.push([at(m.index), at(m.index + m[0].length - 1) + 1]);
    }
    found.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    let out = '';
    let pos = from;
    for (const [start, end] of found) {
      if (start < pos) continue;
      out += text.slice(pos, start) + mask;
      pos = end;
    }
    const done = Math.max(pos, cut);
    return { out: out + text.slice(pos, done), done };
  };
  return {
    mask: (text: string): string => emit(text, 0, text.length).out,
    open: () => {
      /** The last characters let through, which a wrap looks back on; then the text held back. */
      let before = '';
      let held = '';
      return {
        push(chunk: string): string {
          const text = before + held + chunk;
          const r = emit(text, before.length, holdFrom(text, before.length));
          before = text.slice(Math.max(0, r.done - WRAP_AFTER), r.done);
          held = text.slice(r.done);
          return r.out;
        },
        end(): string {
          const text = before + held;
          const r = emit(text, before.length, text.length);
          before = held = '';
          return r.out;
        },
      };
    },
  };
}
