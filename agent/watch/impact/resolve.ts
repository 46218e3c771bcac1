import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { createPathsMatcher, getTsconfig, type PathsMatcher } from 'get-tsconfig';

/** Files whose imports are read. A `.d.ts` is a `.ts`. */
export const SOURCE_EXTENSIONS: readonly string[] = ['.js', '.cjs', '.mjs', '.jsx', '.ts', '.tsx', '.mts', '.cts'];
/** Files an import may name without their extension: the sources, JSON and native addons. */
export const MODULE_EXTENSIONS: readonly string[] = [...SOURCE_EXTENSIONS, '.json', '.node'];

const SOURCE_SET = new Set(SOURCE_EXTENSIONS);
const MODULE_SET = new Set(MODULE_EXTENSIONS);

export function isSourceFile(rel: string): boolean {
  return SOURCE_SET.has(path.posix.extname(rel));
}

export function isModuleFile(rel: string): boolean {
  return MODULE_SET.has(path.posix.extname(rel));
}

/** Probing order from a TS file: TypeScript's. From a JS file: Node's, then the TS loaders'. */
const FROM_TS = ['.ts', '.tsx', '.d.ts', '.js', '.jsx', '.mts', '.cts', '.mjs', '.cjs', '.json', '.node'];
const FROM_JS = ['.js', '.json', '.node', '.jsx', '.mjs', '.cjs', '.ts', '.tsx', '.mts', '.cts', '.d.ts'];
/** TypeScript's rule: `./x.js` names `x.ts` when there is one. */
const JS_TO_TS: Record<string, readonly string[]> = {
  '.js': ['.ts', '.tsx', '.d.ts'],
  '.jsx': ['.tsx'],
  '.mjs': ['.mts', '.d.mts'],
  '.cjs': ['.cts', '.d.cts'],
};
const TS_IMPORTER = /\.[cm]?tsx?$/;

const BUILTINS = new Set(builtinModules);

/** The files of the workspace the resolver may answer with (relative, forward slashes). */
export interface FileIndex {
  has(rel: string): boolean;
}

/**
 * Resolves import specifiers to workspace files, as TypeScript and Node would, without touching
 * the disk for the usual case: candidates are looked up in the graph's index of module files.
 *
 * - `./x`, `../x`: the file, then with each extension, then `x/index.*` (and a folder's
 *   `package.json` `main`). From a TS file `./x.js` is `x.ts` when there is one.
 * - anything else: the `paths`/`baseUrl` of the nearest tsconfig.json (or jsconfig.json);
 *   what those do not place is a package, outside the graph.
 * - `node:x`, built-ins, `http:` URLs: outside the graph.
 *
 * A specifier naming a file that is not a module (`./styles.css`) is looked for on disk once,
 * until `reset`.
 */
export class Resolver {
  private readonly matchers = new Map<string, PathsMatcher | null>();
  private tsconfigCache = new Map<string, unknown>();
  private readonly onDisk = new Map<string, boolean>();

  constructor(
    private readonly root: string,
    private readonly files: FileIndex,
  ) {}

  /** Forgets what was read from disk: tsconfig files, package.json `main`s, other files. */
  reset(): void {
    this.matchers.clear();
    this.tsconfigCache = new Map();
    this.onDisk.clear();
  }

  /** The workspace file `specifier` names when imported from `from`, or undefined. */
  resolve(from: string, specifier: string): string | undefined {
    if (specifier === '' || specifier.includes('\0')) return undefined;
    const ts = TS_IMPORTER.test(from);
    if (specifier.startsWith('./') || specifier.startsWith('../') || specifier === '.' || specifier === '..') {
      const spec = stripQuery(specifier);
      return this.resolvePath(path.posix.join(path.posix.dirname(from), spec), ts, 0);
    }
    if (specifier.startsWith('/')) {
      const rel = this.toRel(stripQuery(specifier));
      return rel === undefined ? undefined : this.resolvePath(rel, ts, 0);
    }
    if (specifier.startsWith('node:') || BUILTINS.has(specifier) || /^[a-z][a-z0-9+.-]*:/i.test(specifier)) return undefined;
    const matcher = this.pathsMatcher(path.posix.dirname(from));
    if (matcher) {
      let candidates: string[] = [];
      try {
        candidates = matcher(specifier);
      } catch {
        candidates = [];
      }
      for (const candidate of candidates) {
        const rel = this.toRel(candidate);
        if (rel === undefined) continue;
        const found = this.resolvePath(rel, ts, 0);
        if (found) return found;
      }
    }
    return undefined;
  }

  private toRel(abs: string): string | undefined {
    const rel = path.relative(this.root, abs).split(path.sep).join('/');
    if (rel === '' || rel.startsWith('../') || rel === '..' || path.isAbsolute(rel)) return undefined;
    return rel;
  }

  private resolvePath(base: string, ts: boolean, depth: number): string | undefined {
    if (base === '' || base === '.' || base.startsWith('../') || base === '..') return undefined;
    if (base.endsWith('/')) base = base.slice(0, -1);
    const ext = path.posix.extname(base);
    if (ext) {
      const mapped = JS_TO_TS[ext];
      if (mapped && ts) {
        const found = this.firstOf(base.slice(0, -ext.length), mapped);
        if (found) return found;
      }
      if (this.files.has(base)) return base;
      if (!MODULE_SET.has(ext) && this.existsOnDisk(base)) return base;
      if (mapped && !ts) {
        // A JS file run by a TS loader (tsx, ts-node) may import `./x.js` for `x.ts`.
        const found = this.firstOf(base.slice(0, -ext.length), mapped);
        if (found) return found;
      }
    }
    const order = ts ? FROM_TS : FROM_JS;
    const direct = this.firstOf(base, order);
    if (direct) return direct;
    // A folder: its package.json's main, then its index.
    if (depth < 2 && this.files.has(`${base}/package.json`)) {
      const main = this.packageMain(`${base}/package.json`);
      if (main) {
        const found = this.resolvePath(path.posix.join(base, main), ts, depth + 1);
        if (found) return found;
      }
    }
    return this.firstOf(`${base}/index`, order);
  }

  private firstOf(stem: string, extensions: readonly string[]): string | undefined {
    for (const e of extensions) {
      const candidate = stem + e;
      if (this.files.has(candidate)) return candidate;
    }
    return undefined;
  }

  private existsOnDisk(rel: string): boolean {
    let known = this.onDisk.get(rel);
    if (known === undefined) {
      try {
        known = fs.statSync(path.join(this.root, rel)).isFile();
      } catch {
        known = false;
      }
      this.onDisk.set(rel, known);
    }
    return known;
  }

  private packageMain(rel: string): string | undefined {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(this.root, rel), 'utf8')) as { main?: unknown };
      return typeof pkg.main === 'string' && pkg.main !== '' ? pkg.main : undefined;
    } catch {
      return undefined;
    }
  }

  /** The paths matcher of the tsconfig.json (or jsconfig.json) nearest to a folder. */
  private pathsMatcher(dirRel: string): PathsMatcher | null {
    let m = this.matchers.get(dirRel);
    if (m !== undefined) return m;
    m = null;
    try {
      const abs = path.join(this.root, dirRel);
      const cache = this.tsconfigCache as Map<string, never>;
      const config = getTsconfig(abs, 'tsconfig.json', cache) ?? getTsconfig(abs, 'jsconfig.json', cache);
      if (config) m = createPathsMatcher(config);
    } catch {
      // An unreadable tsconfig maps nothing; its change makes every test run anyway.
      m = null;
    }
    this.matchers.set(dirRel, m);
    return m;
  }
}

/** `./x.svg?raw` to `./x.svg`. */
function stripQuery(specifier: string): string {
  const q = specifier.indexOf('?');
  return q < 0 ? specifier : specifier.slice(0, q);
}
