/**
 * Terminal text as styled segments: SGR colour and style codes (ESC [ ... m) become class
 * names (`ansi-fg-1`, `ansi-bold`), 256-colour and true-colour codes become CSS colours, every
 * other escape sequence is dropped, and a lone carriage return starts its line over (progress
 * bars). Text is never interpreted as markup: the segments hold it as it came.
 *
 * Chunks may split a line or an escape sequence anywhere: AnsiText keeps the style and the
 * unfinished sequence from one chunk to the next. Pure: no DOM.
 */

/** A run of text in one style. `classes` is a space-separated list; fg/bg are CSS colours for 256/true colours. */
export interface Segment {
  text: string;
  classes: string;
  fg?: string;
  bg?: string;
}

/** One line of log text, as styled segments. */
export type Line = Segment[];

type Colour = number | string | null;

interface Style {
  fg: Colour;
  bg: Colour;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
  strike: boolean;
  inverse: boolean;
}

const PLAIN: Style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, strike: false, inverse: false };

/** The longest escape sequence kept across chunks; a longer one is dropped. */
const MAX_PENDING = 256;

const TOKEN = /\x1b\[([0-?]*)([ -/]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\r\n|\n|\r|\t|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]|[^\x00-\x1f\x7f]+/y;
/** The start of an escape sequence that the text ends before it is finished. */
const UNFINISHED = /^\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?$/;

/** Log text that grows chunk by chunk, kept as lines of styled segments. */
export class AnsiText {
  readonly lines: Line[] = [[]];
  private style: Style = { ...PLAIN };
  private pending = '';
  private afterCr = false;

  /** Adds a chunk; returns the index of the first line it changed. */
  append(chunk: string): number {
    const firstChanged = this.lines.length - 1;
    let text = this.pending + chunk;
    this.pending = '';
    if (this.afterCr && text.length > 0) {
      // The \r that ended the last chunk was half of \r\n, or a return to the line's start.
      this.afterCr = false;
      if (text.startsWith('\n')) {
        this.lines.push([]);
        text = text.slice(1);
      } else {
        this.lines[this.lines.length - 1] = [];
      }
    }
    TOKEN.lastIndex = 0;
    while (TOKEN.lastIndex < text.length) {
      const at = TOKEN.lastIndex;
      const m = TOKEN.exec(text);
      if (!m) {
        const rest = text.slice(at);
        if (UNFINISHED.test(rest)) {
          // An escape sequence that this chunk does not finish: wait for the rest.
          if (rest.length <= MAX_PENDING) this.pending = rest;
          break;
        }
        TOKEN.lastIndex = at + 1; // a stray ESC
        continue;
      }
      const token = m[0];
      if (m[3] !== undefined) {
        if (m[3] === 'm' && m[2] === '') this.sgr(m[1]);
      } else if (token === '\n' || token === '\r\n') {
        this.lines.push([]);
      } else if (token === '\r') {
        if (TOKEN.lastIndex === text.length) this.afterCr = true;
        else this.lines[this.lines.length - 1] = [];
      } else if (token === '\t' || token.charCodeAt(0) > 0x1f) {
        if (token.charCodeAt(0) !== 0x7f) this.push(token);
      }
      // Other control characters and escape sequences are dropped.
    }
    return firstChanged;
  }

  /** Each line's text without styles (what a search looks in). */
  plainLines(): string[] {
    return this.lines.map(lineText);
  }

  /** The lines, without the empty one after a final newline. */
  get completeLines(): Line[] {
    const last = this.lines[this.lines.length - 1];
    return last.length === 0 ? this.lines.slice(0, -1) : this.lines;
  }

  private push(text: string): void {
    const line = this.lines[this.lines.length - 1];
    const seg = segmentOf(text, this.style);
    const last = line[line.length - 1];
    if (last && last.classes === seg.classes && last.fg === seg.fg && last.bg === seg.bg) last.text += text;
    else line.push(seg);
  }

  private sgr(params: string): void {
    const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) this.style = { ...PLAIN };
      else if (c === 1) this.style.bold = true;
      else if (c === 2) this.style.dim = true;
      else if (c === 3) this.style.italic = true;
      else if (c === 4) this.style.underline = true;
      else if (c === 7) this.style.inverse = true;
      else if (c === 9) this.style.strike = true;
      else if (c === 21 || c === 22) this.style = { ...this.style, bold: false, dim: false };
      else if (c === 23) this.style.italic = false;
      else if (c === 24) this.style.underline = false;
      else if (c === 27) this.style.inverse = false;
      else if (c === 29) this.style.strike = false;
      else if (c >= 30 && c <= 37) this.style.fg = c - 30;
      else if (c === 39) this.style.fg = null;
      else if (c >= 40 && c <= 47) this.style.bg = c - 40;
      else if (c === 49) this.style.bg = null;
      else if (c >= 90 && c <= 97) this.style.fg = c - 90 + 8;
      else if (c >= 100 && c <= 107) this.style.bg = c - 100 + 8;
      else if (c === 38 || c === 48) {
        const [colour, used] = extendedColour(codes, i + 1);
        if (colour !== undefined) this.style[c === 38 ? 'fg' : 'bg'] = colour;
        i += used;
      }
    }
  }
}

/** The text of a line of segments. */
export function lineText(line: Line): string {
  let out = '';
  for (const s of line) out += s.text;
  return out;
}

/** All of a text's lines at once. */
export function ansiLines(text: string): Line[] {
  const t = new AnsiText();
  t.append(text);
  return t.completeLines;
}

/** 38;5;n or 38;2;r;g;b after the 38 (or 48) at codes[from - 1]: the colour and how many codes it took. */
function extendedColour(codes: number[], from: number): [Colour | undefined, number] {
  const mode = codes[from];
  if (mode === 5) {
    const n = codes[from + 1];
    if (n === undefined || !(n >= 0 && n <= 255)) return [undefined, 2];
    return [n < 16 ? n : xterm256(n), 2];
  }
  if (mode === 2) {
    const [r, g, b] = [codes[from + 1], codes[from + 2], codes[from + 3]];
    if ([r, g, b].some((v) => v === undefined || !(v >= 0 && v <= 255))) return [undefined, 4];
    return [`rgb(${r}, ${g}, ${b})`, 4];
  }
  return [undefined, 0];
}

/** The CSS colour of xterm's 256-colour palette entry n (16..255). */
export function xterm256(n: number): string {
  if (n >= 232) {
    const v = 8 + 10 * (n - 232);
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = n - 16;
  const level = (x: number) => (x === 0 ? 0 : 55 + 40 * x);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}

function segmentOf(text: string, s: Style): Segment {
  let fg = s.fg;
  let bg = s.bg;
  const classes: string[] = [];
  if (s.inverse) {
    [fg, bg] = [bg, fg];
    if (fg === null) classes.push('ansi-inverse-fg');
    if (bg === null) classes.push('ansi-inverse-bg');
  }
  const seg: Segment = { text, classes: '' };
  if (typeof fg === 'number') classes.push(`ansi-fg-${fg}`);
  else if (typeof fg === 'string') seg.fg = fg;
  if (typeof bg === 'number') classes.push(`ansi-bg-${bg}`);
  else if (typeof bg === 'string') seg.bg = bg;
  if (s.bold) classes.push('ansi-bold');
  if (s.dim) classes.push('ansi-dim');
  if (s.italic) classes.push('ansi-italic');
  if (s.underline) classes.push('ansi-underline');
  if (s.strike) classes.push('ansi-strike');
  seg.classes = classes.join(' ');
  return seg;
}
