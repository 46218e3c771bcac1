import * as fs from 'node:fs';
import * as path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import ignore, { type Ignore } from 'ignore';
import { Disposable, Emitter, reportUnexpected, toDisposable, type Event, type IDisposable } from '../util/lifecycle';
import { GlobSet } from './impact/glob';

/**
 * What one burst of saves changed: workspace-relative paths with forward slashes, sorted. Each
 * file is judged by how it is at the end of the burst: a file deleted and written again is in
 * `changed`; a temporary file that came and went within the burst is in neither.
 */
export interface FileChangeSet {
  changed: string[];
  deleted: string[];
}

/** Folder names never watched nor scanned, at any depth, whatever the ignore files say. */
export const ALWAYS_IGNORED: ReadonlySet<string> = new Set(['.git', 'node_modules', '.conveyor']);

/** Default quiet period: a burst ends when nothing was saved for this long. */
export const DEFAULT_QUIET_MS = 100;
/** Default cap: a burst that goes on longer than this is reported anyway, and the rest next. */
export const DEFAULT_MAX_WAIT_MS = 1000;

/**
 * The files git ignores in a workspace, as git decides it: the `.gitignore` of the workspace
 * and of every folder below it (each relative to its folder, a deeper file overriding a
 * shallower one), `.gitignore` files of the folders between the repository root and the
 * workspace, and the repository's `info/exclude`. `.git`, `node_modules` and `.conveyor` are
 * always ignored.
 *
 * Rules are read when a path below their folder is first asked about and kept per folder (one
 * small object, or nothing, per folder seen): nothing is read ahead. `invalidate` forgets a
 * folder's rules when its `.gitignore` changes; `trim` forgets all of them (they are read again
 * on demand), which also lets go of the per-path answers the `ignore` package caches.
 */
export class WorkspaceIgnore {
  /** Folder (relative, '' for the root) to its rules, or null when it has no `.gitignore`. */
  private readonly rules = new Map<string, Ignore | null>();
  /** Rules from above the workspace: the prefix that makes a workspace path relative to them. */
  private outer: { prefix: string; rules: Ignore }[] | undefined;
  private readonly ignoreCase = process.platform === 'darwin' || process.platform === 'win32';

  constructor(readonly root: string) {}

  /** `rel`: relative to the workspace, forward slashes. `isDir`: the path is a folder. */
  ignores(rel: string, isDir: boolean): boolean {
    if (rel === '' || rel === '.') return false;
    const parts = rel.split('/');
    for (const part of parts) if (ALWAYS_IGNORED.has(part)) return true;
    let ignored = false;
    const decide = (rules: Ignore, sub: string): void => {
      let r: { ignored: boolean; unignored: boolean };
      try {
        r = rules.test(isDir ? `${sub}/` : sub);
      } catch {
        return; // a name the package refuses as a relative path: no rule can match it
      }
      if (r.ignored) ignored = true;
      else if (r.unignored) ignored = false;
    };
    for (const o of this.outerRules()) decide(o.rules, o.prefix + rel);
    // The workspace's own rules, then each folder's on the way down.
    let dir = '';
    for (let i = 0; i < parts.length; i++) {
      const rules = this.rulesOf(dir);
      if (rules) decide(rules, dir === '' ? rel : rel.slice(dir.length + 1));
      if (i < parts.length - 1) dir = dir === '' ? parts[i] : `${dir}/${parts[i]}`;
    }
    return ignored;
  }

  /** A `.gitignore` in this folder (relative; '' for the root) changed. */
  invalidate(dirRel: string): void {
    this.rules.delete(dirRel);
  }

  trim(): void {
    this.rules.clear();
    this.outer = undefined;
  }

  private rulesOf(dirRel: string): Ignore | null {
    let r = this.rules.get(dirRel);
    if (r !== undefined) return r;
    const abs = dirRel === '' ? this.root : path.join(this.root, dirRel);
    const texts = [readText(path.join(abs, '.gitignore'))];
    if (dirRel === '') texts.unshift(this.infoExclude());
    const present = texts.filter((t): t is string => t !== undefined);
    r = present.length > 0 ? this.compile(present) : null;
    this.rules.set(dirRel, r);
    return r;
  }

  /** One rule set from whole files (an array given to `add` would be taken as one rule per item). */
  private compile(texts: readonly string[]): Ignore {
    const rules = ignore({ ignorecase: this.ignoreCase });
    for (const text of texts) rules.add(text);
    return rules;
  }

  /** The repository's `info/exclude` when the workspace is the repository root. */
  private infoExclude(): string | undefined {
    const gitDir = resolveGitDir(this.root);
    return gitDir ? readText(path.join(gitDir, 'info', 'exclude')) : undefined;
  }

  private outerRules(): { prefix: string; rules: Ignore }[] {
    if (this.outer) return this.outer;
    this.outer = [];
    // Walk up to the repository root, if the workspace is below it.
    const chain: string[] = [];
    let dir = this.root;
    let repoRoot: string | undefined;
    for (let depth = 0; depth < 64; depth++) {
      if (fs.existsSync(path.join(dir, '.git'))) {
        repoRoot = dir;
        break;
      }
      const up = path.dirname(dir);
      if (up === dir) break;
      chain.push(up);
      dir = up;
    }
    if (!repoRoot || repoRoot === this.root) return this.outer;
    const gitDir = resolveGitDir(repoRoot);
    const exclude = gitDir ? readText(path.join(gitDir, 'info', 'exclude')) : undefined;
    for (const ancestor of chain.reverse()) {
      const texts = [readText(path.join(ancestor, '.gitignore'))];
      if (ancestor === repoRoot) texts.unshift(exclude);
      const present = texts.filter((t): t is string => t !== undefined);
      if (present.length === 0) continue;
      const prefix = path.relative(ancestor, this.root).split(path.sep).join('/') + '/';
      this.outer.push({ prefix, rules: this.compile(present) });
    }
    return this.outer;
  }
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** `.git` is a folder, or (worktrees, submodules) a file naming one; `info/` is in the common dir. */
function resolveGitDir(repoRoot: string): string | undefined {
  const dotGit = path.join(repoRoot, '.git');
  try {
    if (fs.statSync(dotGit).isDirectory()) return dotGit;
    const m = /^gitdir:\s*(.+)$/m.exec(fs.readFileSync(dotGit, 'utf8'));
    if (!m) return undefined;
    const gitDir = path.resolve(repoRoot, m[1].trim());
    const common = readText(path.join(gitDir, 'commondir'));
    return common ? path.resolve(gitDir, common.trim()) : gitDir;
  } catch {
    return undefined;
  }
}

/**
 * Groups events into bursts, like a `Delayer`: every `trigger()` restarts the quiet period, and
 * the callback runs once the quiet period passes with no trigger, or `maxWaitMs` after the
 * first trigger of the burst, whichever comes first. A formatter saving ten files is one burst;
 * a build writing without pause still gets reported every `maxWaitMs`.
 */
export class Debouncer implements IDisposable {
  private quiet: NodeJS.Timeout | undefined;
  private cap: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    private readonly quietMs: number,
    private readonly maxWaitMs: number,
    private readonly callback: () => void,
  ) {}

  /** True between the first trigger of a burst and the callback. */
  get pending(): boolean {
    return this.cap !== undefined;
  }

  trigger(): void {
    if (this.disposed) return;
    clearTimeout(this.quiet);
    this.quiet = setTimeout(() => this.flush(), this.quietMs);
    this.cap ??= setTimeout(() => this.flush(), this.maxWaitMs);
  }

  /** Ends the burst now, if one is pending. */
  flush(): void {
    if (!this.pending) return;
    this.cancel();
    try {
      this.callback();
    } catch (e) {
      reportUnexpected(e);
    }
  }

  /** Drops the pending burst without running the callback. */
  cancel(): void {
    clearTimeout(this.quiet);
    clearTimeout(this.cap);
    this.quiet = undefined;
    this.cap = undefined;
  }

  dispose(): void {
    this.disposed = true;
    this.cancel();
  }
}

/** Folders listed at once while walking the workspace. */
const WALK_CONCURRENCY = 8;

export interface WalkHandlers {
  /** Each folder that is not skipped, the root ('') first. */
  onFolder?(rel: string): void;
  /** Each regular file in those folders that the rules do not ignore. */
  onFile?(rel: string): void;
  /** Skip a folder (and all below it) that the rules do not ignore. */
  skipFolder?(rel: string): boolean;
}

/**
 * Lists the workspace (relative, forward-slash paths) without reading what the rules ignore:
 * an ignored folder is skipped before it is opened. Only names and types are read, no stats, a
 * few folders at a time. Symbolic links are not followed.
 */
export async function walkWorkspace(root: string, rules: WorkspaceIgnore, on: WalkHandlers): Promise<void> {
  const queue: string[] = [''];
  on.onFolder?.('');
  let next = 0;
  let active = 0;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (active < WALK_CONCURRENCY && next < queue.length) {
        const dir = queue[next];
        queue[next++] = ''; // the queue keeps no more than it must
        active++;
        fs.promises
          .readdir(dir === '' ? root : path.join(root, dir), { withFileTypes: true })
          .then(
            (entries) => {
              for (const e of entries) {
                const rel = dir === '' ? e.name : `${dir}/${e.name}`;
                if (e.isDirectory()) {
                  if (rules.ignores(rel, true) || on.skipFolder?.(rel)) continue;
                  on.onFolder?.(rel);
                  queue.push(rel);
                } else if (e.isFile() && !rules.ignores(rel, false)) {
                  on.onFile?.(rel);
                }
              }
            },
            () => undefined, // gone or unreadable: nothing to list
          )
          .finally(() => {
            active--;
            pump();
          });
      }
      if (active === 0 && next >= queue.length) resolve();
    };
    pump();
  });
}

export interface FileWatcherOptions {
  /** Absolute path of the workspace folder. */
  root: string;
  /** `watch.include`: globs of the files whose saves count. Default: every file. */
  include?: readonly string[];
  /** `watch.exclude`: globs of files (or whole folders: `dist/**`) whose saves never count. */
  exclude?: readonly string[];
  /** Quiet period that ends a burst, in ms. Default 100. */
  quietMs?: number;
  /** Longest a burst is held before it is reported, in ms. Default 1000. */
  maxWaitMs?: number;
}

/**
 * Files editors write beside the one being saved: vim's swap files and its `4913` probe, emacs
 * lock and auto-save files, backups ending in `~`, JetBrains' and Sublime's temporaries.
 */
const EDITOR_TEMP = /(?:^|\/)(?:\.[^/]*\.sw[a-p]|[^/]*~|\.#[^/]*|#[^/]*#|4913|[^/]*___jb_(?:tmp|old)___|\.subl[^/]*\.tmp)$/;

/**
 * Folders handed to one chokidar instance at start. Chokidar reads every folder it is given at
 * once and stats every entry, so handing it a whole large tree means tens of thousands of
 * requests in flight; in slices, the start costs the same time and a fraction of the memory.
 */
const FOLDERS_PER_SLICE = 64;

/**
 * Watches the workspace and reports bursts of saves as change sets.
 *
 * ```
 *   walk (git rules, .git, node_modules, .conveyor, watch.exclude pruned) ──> folders, files
 *   folders ──> chokidar, 64 at a time, each folder watched on its own (depth 0)
 *
 *   raw event "name changed in folder" ──> ignored, excluded, not included? ──> drop
 *                                      └─> pending ──> quiet 100 ms (at most 1 s) ──> lstat each:
 *        a file ──> changed;   gone, and known ──> deleted;   anything else ──> dropped
 *   ──> onDidChange({ changed, deleted })
 * ```
 *
 * Chokidar watches folders, not files: one watch per folder reports every change to the files
 * in it, where a watch per file would cost kilobytes for each of a large tree's files. It still
 * does what it is good at: watching each folder, reading it again when it changes, and telling
 * when a folder appears (watched in turn) or disappears. The watcher keeps the names of the
 * files it may report (those git does not ignore and the config includes), to report the files
 * of a deleted folder and to tell a deleted file from a temporary one that came and went within
 * the burst.
 *
 * Nothing is reported for the files found at start (`ready` resolves when they are all
 * watched). A `.gitignore` edited while watching applies to the events that follow; a folder it
 * no longer ignores is picked up when the watcher starts again.
 */
export class FileWatcher extends Disposable {
  private readonly _onDidChange = this._register(new Emitter<FileChangeSet>());
  /** A burst of saves ended: what it changed and deleted. Not fired for a burst that changed nothing. */
  readonly onDidChange: Event<FileChangeSet> = this._onDidChange.event;

  private readonly _onWillChange = this._register(new Emitter<void>());
  /** The first event of a burst arrived: `onDidSettle` follows after the quiet period. */
  readonly onWillChange: Event<void> = this._onWillChange.event;

  private readonly _onDidSettle = this._register(new Emitter<void>());
  /** A burst ended, after its `onDidChange` if it changed anything. */
  readonly onDidSettle: Event<void> = this._onDidSettle.event;

  /** Resolves when every folder is watched (or the watcher is disposed). */
  readonly ready: Promise<void>;

  readonly root: string;
  private readonly rootPrefix: string;
  private readonly ignoreRules: WorkspaceIgnore;
  private readonly include: GlobSet;
  private readonly exclude: GlobSet;
  private readonly debouncer: Debouncer;
  /** Each watched folder (relative, '' for the root) and the chokidar instance watching it. */
  private readonly folders = new Map<string, FSWatcher>();
  private readonly instances: FSWatcher[] = [];
  /** The instance that takes the folders that appear after the start. */
  private late: FSWatcher | undefined;
  /** During the start: every folder found by the walk, watched now or soon. */
  private planned: Set<string> | undefined;
  /** During the start: ends the wait for the slice being watched. */
  private stopStart: (() => void) | undefined;
  /** The files that may be reported, by folder: folder (relative, '' for the root) to names. */
  private readonly files = new Map<string, Set<string>>();
  /** Paths touched in the burst in progress. */
  private pending = new Set<string>();
  /** Reports go out one at a time, in order. */
  private reporting: Promise<void> = Promise.resolve();
  private isReady = false;
  private closing: Promise<void> | undefined;

  constructor(opts: FileWatcherOptions) {
    super();
    this.root = path.resolve(opts.root);
    this.rootPrefix = this.root.endsWith(path.sep) ? this.root : this.root + path.sep;
    this.ignoreRules = new WorkspaceIgnore(this.root);
    this.include = new GlobSet(opts.include && opts.include.length > 0 ? opts.include : ['**']);
    this.exclude = new GlobSet(opts.exclude ?? []);
    this.debouncer = this._register(
      new Debouncer(opts.quietMs ?? DEFAULT_QUIET_MS, opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS, () => this.report()),
    );
    let markReady!: () => void;
    this.ready = new Promise<void>((resolve) => (markReady = resolve));
    this._register(toDisposable(() => markReady()));
    this.start()
      .catch((e: unknown) => reportUnexpected(e))
      .finally(() => markReady());
  }

  /** Reports the pending burst now instead of after the quiet period (tests, `flush` commands). */
  flush(): void {
    this.debouncer.flush();
  }

  /** Disposes and waits until the watches are released. */
  async close(): Promise<void> {
    this.dispose();
    await this.closing;
  }

  override dispose(): void {
    if (!this.closing) {
      this.closing = Promise.all(this.instances.map((w) => w.close()))
        .then(() => undefined)
        .catch((e: unknown) => reportUnexpected(e));
    }
    this.stopStart?.();
    this.pending = new Set();
    this.files.clear();
    this.folders.clear();
    super.dispose();
  }

  private async start(): Promise<void> {
    const folders: string[] = [];
    await walkWorkspace(this.root, this.ignoreRules, {
      onFolder: (rel) => folders.push(rel),
      onFile: (rel) => {
        if (this.counts(rel)) this.remember(rel);
      },
      skipFolder: (rel) => this.exclude.matches(rel),
    });
    this.planned = new Set(folders);
    for (let i = 0; i < folders.length && !this.closing; i += FOLDERS_PER_SLICE) {
      const slice = folders.slice(i, i + FOLDERS_PER_SLICE);
      const w = this.watchFolders(slice.map((rel) => this.absolute(rel)));
      for (const rel of slice) this.folders.set(rel, w);
      await new Promise<void>((resolve) => {
        this.stopStart = resolve; // an instance closed before it is ready never says so
        w.once('ready', () => resolve());
      });
    }
    this.planned = undefined;
    this.stopStart = undefined;
    this.isReady = true;
    // The per-path answers cached during the start are not needed any more.
    this.ignoreRules.trim();
  }

  private watchFolders(paths: string[]): FSWatcher {
    const w = watch(paths, {
      ignored: (p, stats) => this.ignored(p, stats),
      // The subfolders of the given folders are announced, so that a folder that appears later is watched.
      ignoreInitial: false,
      persistent: true,
      followSymlinks: false,
      atomic: false,
      depth: 0,
    });
    w.on('raw', (_event: string, name: unknown, details: unknown) => {
      const folder = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
      if (typeof name !== 'string' || name === '' || typeof folder !== 'string') return;
      this.touch(path.join(folder, name));
    });
    w.on('addDir', (p) => this.folderAdded(p));
    w.on('unlinkDir', (p) => this.folderRemoved(p));
    w.on('error', (e) => reportUnexpected(new Error(`watching ${this.root}: ${(e as Error)?.message ?? e}`)));
    this.instances.push(w);
    return w;
  }

  private absolute(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  /** Workspace-relative forward-slash path, or undefined outside the workspace. */
  private relative(abs: string): string | undefined {
    if (abs === this.root) return '';
    if (!abs.startsWith(this.rootPrefix)) return undefined;
    const rel = abs.slice(this.rootPrefix.length);
    return path.sep === '/' ? rel : rel.split(path.sep).join('/');
  }

  /** A path whose saves count: not ignored, not excluded, included, not an editor's temporary. */
  private counts(rel: string): boolean {
    return this.include.matches(rel) && !this.exclude.matches(rel) && !EDITOR_TEMP.test(rel) && !this.ignoreRules.ignores(rel, false);
  }

  /**
   * Chokidar asks this before it reads a folder and for each entry it lists: ignored folders are
   * pruned before they are read. Files are never watched one by one (their folder's watch
   * reports them); a file listed after the start that the watcher does not know is new. Without
   * stats a path counts as a file, and chokidar asks again once it has them.
   */
  private ignored(abs: string, stats: fs.Stats | undefined): boolean {
    const rel = this.relative(abs);
    if (rel === undefined || rel === '') return false;
    if (stats && !stats.isDirectory()) {
      if (this.isReady && stats.isFile() && !this.known(rel)) this.touch(abs);
      return true;
    }
    return this.exclude.matches(rel) || this.ignoreRules.ignores(rel, stats !== undefined);
  }

  /** A folder appeared (or was listed as a subfolder): watched, unless it already is. */
  private folderAdded(abs: string): void {
    const rel = this.relative(abs);
    if (rel === undefined || this.folders.has(rel) || this.planned?.has(rel) || this.closing) return;
    if (this.exclude.matches(rel) || this.ignoreRules.ignores(rel, true)) return;
    const w = (this.late ??= this.watchFolders([]));
    this.folders.set(rel, w);
    w.add(abs);
  }

  /** A folder was deleted: it and its subfolders are unwatched, and every file known below it is touched (and found gone). */
  private folderRemoved(abs: string): void {
    const rel = this.relative(abs);
    if (rel === undefined || rel === '') return;
    for (const [folder, w] of this.folders) {
      if (folder !== rel && !folder.startsWith(`${rel}/`)) continue;
      this.folders.delete(folder);
      w.unwatch(this.absolute(folder));
    }
    for (const [folder, names] of this.files) {
      if (folder !== rel && !folder.startsWith(`${rel}/`)) continue;
      for (const name of names) this.touch(path.join(this.root, folder, name));
    }
  }

  private touch(abs: string): void {
    const rel = this.relative(abs);
    if (!rel || this.closing) return;
    const slash = rel.lastIndexOf('/');
    if (rel.slice(slash + 1) === '.gitignore') this.ignoreRules.invalidate(slash < 0 ? '' : rel.slice(0, slash));
    if (!this.counts(rel)) return;
    const first = this.pending.size === 0 && !this.debouncer.pending;
    this.pending.add(rel);
    if (first) this._onWillChange.fire();
    this.debouncer.trigger();
  }

  private known(rel: string): boolean {
    const slash = rel.lastIndexOf('/');
    return this.files.get(slash < 0 ? '' : rel.slice(0, slash))?.has(rel.slice(slash + 1)) ?? false;
  }

  private remember(rel: string): void {
    const slash = rel.lastIndexOf('/');
    const folder = slash < 0 ? '' : rel.slice(0, slash);
    let names = this.files.get(folder);
    if (!names) this.files.set(folder, (names = new Set()));
    names.add(rel.slice(slash + 1));
  }

  private forget(rel: string): void {
    const slash = rel.lastIndexOf('/');
    const folder = slash < 0 ? '' : rel.slice(0, slash);
    const names = this.files.get(folder);
    if (!names) return;
    names.delete(rel.slice(slash + 1));
    if (names.size === 0) this.files.delete(folder);
  }

  /** The burst ended: looks at each touched path, then reports. */
  private report(): void {
    const touched = this.pending;
    this.pending = new Set();
    this.reporting = this.reporting
      .then(() => this.classify(touched))
      .then((set) => {
        if (this.closing) return;
        if (set.changed.length > 0 || set.deleted.length > 0) this._onDidChange.fire(set);
        this._onDidSettle.fire();
      })
      .catch((e: unknown) => reportUnexpected(e));
  }

  private async classify(touched: ReadonlySet<string>): Promise<FileChangeSet> {
    const set: FileChangeSet = { changed: [], deleted: [] };
    await Promise.all(
      [...touched].map(async (rel) => {
        let kind: 'file' | 'gone' | 'other';
        try {
          kind = (await fs.promises.lstat(path.join(this.root, rel))).isFile() ? 'file' : 'other';
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          kind = code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : 'other';
        }
        if (kind === 'file') {
          this.remember(rel);
          set.changed.push(rel);
        } else if (kind === 'gone' && this.known(rel)) {
          this.forget(rel);
          set.deleted.push(rel);
        }
      }),
    );
    set.changed.sort();
    set.deleted.sort();
    return set;
  }
}
