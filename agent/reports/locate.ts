/**
 * Source locations for test results.
 *
 * A failure is placed at the first stack frame that lies inside the workspace (not under
 * `node_modules`, `site-packages` or `dist-packages`, not a `node:` internal, not outside the
 * workspace root). When there is no such frame, the test's own location (a JUnit `file`/`line`
 * attribute, a TAP `location:`) is used. Positions in compiled JavaScript are mapped back to
 * the original source through the file's source map (a `//# sourceMappingURL=` comment naming
 * a `.map` file or holding an inline `data:` URL), with Node's built-in `SourceMap`; when the
 * map is missing, unreadable or points at a source that is not on disk, the compiled position
 * is kept.
 *
 * Frames understood:
 * - V8: `at fn (file:line:col)`, `at file:line:col`, `file://` URLs, and the same without the
 *   leading `at` (as node's TAP reporter prints them);
 * - Python: `File "path", line N, in fn` and pytest's `path:N: Error` lines (innermost last);
 * - JVM: `at pkg.Class.method(File.java:N)`, resolved against the Maven/Gradle source folders
 *   (`src/test/java`, `src/main/java`, and the `kotlin` equivalents) of the runner's folder, and
 *   only when the file exists there.
 *
 * Lines and columns are 1-based throughout. One `Locator` serves one parse: it caches the
 * source maps it reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { SourceLocation } from '../protocol';
import type { ReportContext } from './index';

export interface StackFrame {
  /** As printed: an absolute or relative path, or a `file://` URL; for JVM frames, the bare file name. */
  file: string;
  line: number;
  /** 1-based; null when the frame gives no column (Python, JVM). */
  column: number | null;
  fn: string | null;
  /** JVM frames only: the package of the frame's class (`com.example`), to find the file. */
  jvmPackage?: string;
}

/** A test's own position as a report states it: the line and column may be missing. */
export interface OwnPosition {
  file: string;
  line?: number | null;
  column?: number | null;
}

export interface StackOptions {
  /** Accept V8 frames printed without the leading `at ` (node's TAP `stack:` field). */
  bare?: boolean;
}

/** Source files larger than this are not searched for a source map comment. */
const MAX_SOURCE_BYTES = 64 * 1024 * 1024;

const V8_AT = /^\s*at\s+(.*?)\s*$/;
const JVM_FRAME = /^\s*at\s+([\w$.\/]+)\.([\w$<>-]+)\(([^():]+\.(?:java|kt|kts|groovy|scala)):(\d+)\)\s*$/;
const PY_NATIVE = /^\s*File "(.+)", line (\d+)(?:, in (.*))?\s*$/;
const PY_PYTEST = /^([^\s:<>"][^:<>"]*?\.py):(\d+):(?: .*)?$/;
const POSITION = /^(.*?):(\d+):(\d+)$/;

/** Parses the frames of a stack trace, innermost first. Unknown lines are ignored. */
export function parseStackFrames(stack: string, opts: StackOptions = {}): StackFrame[] {
  const frames: StackFrame[] = [];
  const python: StackFrame[] = [];
  for (const raw of stack.split(/\r?\n/)) {
    const jvm = JVM_FRAME.exec(raw);
    if (jvm) {
      const qualified = jvm[1].includes('/') ? jvm[1].slice(jvm[1].lastIndexOf('/') + 1) : jvm[1];
      const dot = qualified.lastIndexOf('.');
      frames.push({
        file: jvm[3],
        line: Number(jvm[4]),
        column: null,
        fn: `${qualified}.${jvm[2]}`,
        jvmPackage: dot > 0 ? qualified.slice(0, dot) : '',
      });
      continue;
    }
    const py = PY_NATIVE.exec(raw);
    if (py) {
      python.push({ file: py[1], line: Number(py[2]), column: null, fn: py[3] ?? null });
      continue;
    }
    const pytest = PY_PYTEST.exec(raw);
    if (pytest) {
      python.push({ file: pytest[1], line: Number(pytest[2]), column: null, fn: null });
      continue;
    }
    const at = V8_AT.exec(raw);
    const body = at ? at[1] : opts.bare ? raw.trim() : null;
    if (body) {
      const frame = parseV8Body(body);
      if (frame) frames.push(frame);
    }
  }
  // Python prints the innermost frame last.
  return frames.concat(python.reverse());
}

function parseV8Body(body: string): StackFrame | null {
  let fn: string | null = null;
  let where = body;
  const paren = /^(.*?)\s+\((.*)\)$/.exec(body);
  if (paren) {
    fn = paren[1];
    where = paren[2];
  }
  const pos = POSITION.exec(where);
  if (!pos) return null;
  const file = pos[1];
  if (file === '' || file.startsWith('eval at ') || file.includes(', <anonymous>')) return null;
  const line = Number(pos[2]);
  const column = Number(pos[3]);
  if (!(line >= 1) || !(column >= 1)) return null;
  return { file, line, column, fn };
}

interface LoadedMap {
  map: SourceMap;
  /** Where relative `sources` resolve: the map's folder joined with its `sourceRoot`. */
  base: string;
  /** The map's `sources` (empty for an index map). */
  sources: string[];
}

export class Locator {
  private readonly root: string;
  private readonly cwd: string;
  private readonly maps = new Map<string, LoadedMap | null>();
  private readonly exists = new Map<string, boolean>();

  constructor(ctx: ReportContext) {
    this.root = path.resolve(ctx.workspaceRoot);
    this.cwd = path.resolve(this.root, ctx.cwd);
  }

  /**
   * The location of a result: for a failure, the first workspace frame of `stack`; otherwise (or
   * when no frame qualifies) the test's own position; else null.
   */
  locate(stack: string | null, own: OwnPosition | null, opts: StackOptions = {}): SourceLocation | null {
    if (stack) {
      const fromStack = this.fromStack(stack, opts);
      if (fromStack) return fromStack;
    }
    return own ? this.fromOwn(own) : null;
  }

  /** The first frame of `stack` inside the workspace, mapped through source maps; else null. */
  fromStack(stack: string, opts: StackOptions = {}): SourceLocation | null {
    for (const frame of parseStackFrames(stack, opts)) {
      const file = frame.jvmPackage !== undefined ? this.resolveJvm(frame) : this.resolve(frame.file);
      if (file === null || !this.inWorkspace(file)) continue;
      return this.mapPosition(file, frame.line, frame.column);
    }
    return null;
  }

  /** A test's own position; a missing line reads as the file's first line. */
  fromOwn(own: OwnPosition): SourceLocation | null {
    const file = this.resolve(own.file);
    if (file === null || !this.inWorkspace(file)) return null;
    const line = own.line != null && Number.isFinite(own.line) && own.line >= 1 ? Math.floor(own.line) : null;
    if (line === null) return this.mapFile(file);
    const column = own.column != null && Number.isFinite(own.column) && own.column >= 1 ? Math.floor(own.column) : null;
    return this.mapPosition(file, line, column);
  }

  /** An absolute path for a frame's file, or null for internals (`node:`, `<anonymous>`, ...). */
  resolve(file: string): string | null {
    let f = file.trim();
    if (f === '' || f.startsWith('<') || f === 'native') return null;
    if (/^file:\/\//i.test(f)) {
      try {
        f = fileURLToPath(f);
      } catch {
        return null;
      }
    } else if (/^[a-z][a-z0-9+.-]+:/i.test(f) && !/^[a-z]:[\\/]/i.test(f)) {
      // node:, internal:, webpack:// and other schemes: not a file on disk.
      return null;
    } else if (f.startsWith('internal/')) {
      return null;
    }
    return path.resolve(this.cwd, f);
  }

  /** True when `file` is inside the workspace root and not inside a dependency folder. */
  inWorkspace(file: string): boolean {
    const rel = path.relative(this.root, file);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return false;
    const parts = rel.split(/[\\/]/);
    return !parts.some((p) => p === 'node_modules' || p === 'site-packages' || p === 'dist-packages');
  }

  /**
   * Maps a 1-based position in `file` to the original source when `file` has a usable source
   * map; otherwise returns it as it is. A null column maps the line and answers column 1.
   */
  mapPosition(file: string, line: number, column: number | null): SourceLocation {
    const compiled: SourceLocation = { file, line, column: column ?? 1 };
    const loaded = this.loadMap(file);
    if (!loaded) return compiled;
    try {
      let entry = findEntry(loaded.map, line - 1, column === null ? 0 : column - 1);
      if (entry && entry.generatedLine !== line - 1) {
        // No mapping at or before the column on this line: take the line's last mapping.
        entry = findEntry(loaded.map, line - 1, 0x3fffffff);
      }
      if (!entry || entry.generatedLine !== line - 1) return compiled;
      const source = this.resolveSource(loaded.base, entry.originalSource);
      if (source === null || !this.fileExists(source)) return compiled;
      return { file: source, line: entry.originalLine + 1, column: column === null ? 1 : entry.originalColumn + 1 };
    } catch {
      return compiled;
    }
  }

  /**
   * A file without a line: its start, or the start of its original source when the file is
   * compiled from a single source with a source map.
   */
  mapFile(file: string): SourceLocation {
    const loaded = this.loadMap(file);
    if (loaded && loaded.sources.length === 1) {
      const source = this.resolveSource(loaded.base, loaded.sources[0]);
      if (source !== null && this.fileExists(source)) return { file: source, line: 1, column: 1 };
    }
    return { file, line: 1, column: 1 };
  }

  private resolveSource(base: string, source: string): string | null {
    if (/^file:\/\//i.test(source)) {
      try {
        return fileURLToPath(source);
      } catch {
        return null;
      }
    }
    if (/^[a-z][a-z0-9+.-]+:/i.test(source) && !/^[a-z]:[\\/]/i.test(source)) return null;
    return path.resolve(base, source);
  }

  private resolveJvm(frame: StackFrame): string | null {
    const pkgPath = (frame.jvmPackage ?? '').split('.').filter(Boolean);
    for (const root of ['src/test/java', 'src/main/java', 'src/test/kotlin', 'src/main/kotlin']) {
      const candidate = path.resolve(this.cwd, root, ...pkgPath, frame.file);
      if (this.fileExists(candidate)) return candidate;
    }
    return null;
  }

  private fileExists(file: string): boolean {
    let known = this.exists.get(file);
    if (known === undefined) {
      try {
        known = fs.statSync(file).isFile();
      } catch {
        known = false;
      }
      this.exists.set(file, known);
    }
    return known;
  }

  private loadMap(file: string): LoadedMap | null {
    if (this.maps.has(file)) return this.maps.get(file) ?? null;
    let loaded: LoadedMap | null = null;
    try {
      loaded = readSourceMap(file);
    } catch {
      loaded = null;
    }
    this.maps.set(file, loaded);
    return loaded;
  }
}

interface MapEntry {
  generatedLine: number;
  generatedColumn: number;
  originalSource: string;
  originalLine: number;
  originalColumn: number;
}

function findEntry(map: SourceMap, line: number, column: number): MapEntry | null {
  const entry = map.findEntry(line, column) as Partial<MapEntry> | undefined;
  if (
    !entry ||
    typeof entry.generatedLine !== 'number' ||
    typeof entry.originalLine !== 'number' ||
    typeof entry.originalColumn !== 'number' ||
    typeof entry.originalSource !== 'string'
  ) {
    return null;
  }
  return entry as MapEntry;
}

const MAPPING_URL = /\/\/[#@][ \t]*sourceMappingURL=([^\s'"]+)[ \t]*$/gm;

/** Reads the source map of a compiled file, or null when it has none (or a broken one). */
function readSourceMap(file: string): LoadedMap | null {
  const stat = fs.statSync(file);
  if (!stat.isFile() || stat.size > MAX_SOURCE_BYTES) return null;
  const text = fs.readFileSync(file, 'utf8');
  let url: string | null = null;
  for (const m of text.matchAll(MAPPING_URL)) url = m[1];
  if (url === null) return null;

  let json: string;
  let mapDir: string;
  const data = /^data:([^,]*),(.*)$/s.exec(url);
  if (data) {
    json = /;base64$/i.test(data[1]) ? Buffer.from(data[2], 'base64').toString('utf8') : decodeURIComponent(data[2]);
    mapDir = path.dirname(file);
  } else {
    const mapFile = /^file:\/\//i.test(url) ? fileURLToPath(url) : path.resolve(path.dirname(file), decodeURIComponent(url));
    const mapStat = fs.statSync(mapFile);
    if (!mapStat.isFile() || mapStat.size > MAX_SOURCE_BYTES) return null;
    json = fs.readFileSync(mapFile, 'utf8');
    mapDir = path.dirname(mapFile);
  }
  const payload: unknown = JSON.parse(json);
  if (typeof payload !== 'object' || payload === null) return null;
  const p = payload as { mappings?: unknown; sources?: unknown; sections?: unknown; sourceRoot?: unknown };
  const plain = typeof p.mappings === 'string' && Array.isArray(p.sources);
  if (!plain && !Array.isArray(p.sections)) return null;
  let base = mapDir;
  if (typeof p.sourceRoot === 'string' && p.sourceRoot !== '') {
    base = /^file:\/\//i.test(p.sourceRoot) ? fileURLToPath(p.sourceRoot) : path.resolve(mapDir, p.sourceRoot);
  }
  const sources = plain ? (p.sources as unknown[]).filter((s): s is string => typeof s === 'string') : [];
  return { map: new SourceMap(payload as ConstructorParameters<typeof SourceMap>[0]), base, sources };
}
