import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CONFIG_FILE_NAMES } from '../../config/load';
import type { TestImpact } from '../../protocol';
import { walkWorkspace, WorkspaceIgnore, type FileChangeSet } from '../files';
import { GlobSet } from './glob';
import { ImportGraph } from './graph';
import { isModuleFile, isSourceFile } from './resolve';
import { scanImports } from './scan';

export { GlobSet } from './glob';
export { ImportGraph } from './graph';
export { isSourceFile, Resolver } from './resolve';
export { scanImports, type ImportKind, type ImportRef } from './scan';

/** Files larger than this are kept as graph nodes but not read for imports (bundles, dumps). */
const MAX_SOURCE_BYTES = 8 * 1024 * 1024;
/** Files read at once while building the graph. */
const READ_CONCURRENCY = 32;

/**
 * Files whose change can alter how any test runs: manifests and lockfiles, compiler, test
 * runner and transpiler configs, conveyor.yml. A change to one runs every test.
 */
const CONFIG_FILES: readonly RegExp[] = [
  /^package\.json$/,
  /^(package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|pnpm-workspace\.yaml|bun\.lockb?)$/,
  /^[tj]sconfig(\..+)?\.json$/,
  /^\.mocharc(\..+)?$/,
  /^(\.babelrc(\..+)?|babel\.config\..+)$/,
  /^(jest|vitest|vite)\.config\..+$/,
  /^\.swcrc$/,
];

export function isConfigFile(rel: string): boolean {
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  return CONFIG_FILE_NAMES.includes(base) || CONFIG_FILES.some((re) => re.test(base));
}

export interface TestImpactOptions {
  /** Absolute path of the workspace folder. */
  root: string;
  /** `watch.tests`: globs of the test files, relative to the workspace. */
  tests: readonly string[];
}

/**
 * Decides which tests a change set affects, from the workspace's import graph.
 *
 *   changed files ──> config file? ────────────────────────────────> all (reason names it)
 *                 └─> not in the graph (README, a data file)? ───────> all (reason names it)
 *                 └─> test files that import one, directly or not,
 *                     and changed test files themselves ─────────────> affected
 *   no watch.tests, or no JS/TS source in the workspace ─────────────> whole-stage
 *
 * The graph is built once (`create` walks the workspace, skipping what git ignores, and reads
 * every source) and then kept up to date from the change sets: only the changed files are read
 * again. When files appear or disappear, or a tsconfig or package.json changes, every import is
 * resolved again (from memory, no reading), and a file whose imports now land elsewhere counts
 * as changed: its tests run too.
 */
export class TestImpactAnalyzer {
  readonly graph: ImportGraph;
  private readonly testGlobs: GlobSet;
  private readonly tests = new Set<string>();
  private readonly ignoreRules: WorkspaceIgnore;

  private constructor(
    readonly root: string,
    tests: readonly string[],
  ) {
    this.graph = new ImportGraph(root);
    this.testGlobs = new GlobSet(tests);
    this.ignoreRules = new WorkspaceIgnore(root);
  }

  /** Walks the workspace and builds the graph. */
  static async create(opts: TestImpactOptions): Promise<TestImpactAnalyzer> {
    const a = new TestImpactAnalyzer(path.resolve(opts.root), opts.tests);
    await a.build();
    return a;
  }

  /** The test files known now, sorted. */
  get testFiles(): string[] {
    return [...this.tests].sort();
  }

  /** A test file that exists now. */
  hasTest(rel: string): boolean {
    return this.tests.has(rel);
  }

  /**
   * Applies a change set to the graph, then says what it affects. Deleted files are judged by
   * what the graph knew of them before. `counts`, when given, picks the files whose change
   * starts runs (the config's `watch.include`); the others only update the graph.
   */
  async analyze(changes: FileChangeSet, counts: (rel: string) => boolean = () => true): Promise<TestImpact> {
    // Once forgotten, a deleted file is in no graph: whether it was placed is decided now.
    const deleted = new Map(changes.deleted.map((f) => [f, this.places(f)]));
    const moved = await this.update(changes);
    return this.impactOf([...changes.changed, ...changes.deleted].filter(counts), moved, deleted);
  }

  /**
   * What changing these files affects, on the graph as it is (call `update` first for files
   * whose content changed).
   */
  affectedTests(changed: readonly string[]): TestImpact {
    return this.impactOf(changed, new Set(), new Map());
  }

  /**
   * Brings the graph up to date with a change set: reads the changed sources again, forgets the
   * deleted files. Returns the other sources whose imports now resolve differently.
   */
  async update(changes: FileChangeSet): Promise<Set<string>> {
    let membership = false;
    let settings = false;
    for (const rel of changes.deleted) {
      membership = this.graph.removeFile(rel) || membership;
      this.tests.delete(rel);
      if (isConfigFile(rel)) settings = true;
    }
    const toRead: string[] = [];
    for (const rel of changes.changed) {
      if (this.ignoreRules.ignores(rel, false)) continue;
      if (this.testGlobs.matches(rel)) this.tests.add(rel);
      if (isConfigFile(rel)) settings = true;
      if (isSourceFile(rel)) toRead.push(rel);
      else membership = this.graph.addFile(rel) || membership;
    }
    const parsed = await this.readSources(toRead);
    for (const rel of toRead) {
      const specs = parsed.get(rel);
      if (specs === undefined) {
        // Gone before it could be read: a delete the next change set will report.
        membership = this.graph.removeFile(rel) || membership;
        this.tests.delete(rel);
        continue;
      }
      if (!this.graph.isSource(rel)) membership = true;
      this.graph.setSource(rel, specs);
    }
    if (membership || settings) {
      const moved = this.graph.resolveAll();
      for (const rel of toRead) moved.delete(rel);
      return moved;
    }
    for (const rel of toRead) this.graph.resolve(rel);
    return new Set();
  }

  /** `deleted`: deleted files, and whether the graph placed them before they went. */
  private impactOf(changed: readonly string[], moved: ReadonlySet<string>, deleted: ReadonlyMap<string, boolean>): TestImpact {
    const files = [...new Set(changed)].sort();
    if (this.testGlobs.isEmpty) {
      return { mode: 'whole-stage', changed: files, tests: [], reason: 'watch.tests declares no test files, so the watch stages run as written' };
    }
    if (this.graph.sourceCount === 0) {
      return { mode: 'whole-stage', changed: files, tests: [], reason: 'the workspace has no JS or TS sources, so the watch stages run as written' };
    }
    const config = files.filter(isConfigFile);
    if (config.length > 0) {
      return this.all(files, `${config[0]} changed${more(config)}: a config file can affect every test`);
    }
    const unplaced = files.filter((f) => !(deleted.get(f) ?? this.places(f)));
    if (unplaced.length > 0) {
      return this.all(files, `${unplaced[0]} changed${more(unplaced)} and is not in the import graph: any test may depend on it`);
    }
    const reached = this.graph.dependents([...files, ...moved]);
    const tests = [...reached].filter((f) => this.tests.has(f)).sort();
    return { mode: 'affected', changed: files, tests, reason: null };
  }

  private all(changed: string[], reason: string): TestImpact {
    return { mode: 'all', changed, tests: this.testFiles, reason };
  }

  /** The graph can tell what depends on this file. */
  private places(rel: string): boolean {
    return this.tests.has(rel) || this.graph.has(rel);
  }

  private async build(): Promise<void> {
    const sources: string[] = [];
    await walkWorkspace(this.root, this.ignoreRules, {
      onFile: (rel) => {
        if (this.testGlobs.matches(rel)) this.tests.add(rel);
        if (isSourceFile(rel)) sources.push(rel);
        else if (isModuleFile(rel)) this.graph.addFile(rel);
      },
    });
    const parsed = await this.readSources(sources);
    for (const [rel, specs] of parsed) this.graph.setSource(rel, specs);
    this.graph.resolveAll();
    // The per-path answers cached during the walk are not needed any more.
    this.ignoreRules.trim();
  }

  /** Reads and scans sources; a file that cannot be read is left out of the answer. */
  private async readSources(files: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    await eachLimited(files, READ_CONCURRENCY, async (rel) => {
      const abs = path.join(this.root, rel);
      try {
        const handle = await fsp.open(abs, 'r');
        try {
          const { size } = await handle.stat();
          if (size > MAX_SOURCE_BYTES) {
            out.set(rel, []);
            return;
          }
          const text = await handle.readFile('utf8');
          out.set(rel, scanImports(text).map((r) => r.specifier));
        } finally {
          await handle.close();
        }
      } catch {
        // Deleted or unreadable: not a source now.
      }
    });
    return out;
  }
}

function more(xs: readonly string[]): string {
  return xs.length > 1 ? ` (and ${xs.length - 1} more)` : '';
}

async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
