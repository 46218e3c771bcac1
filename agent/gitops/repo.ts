import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { GitOpsConfig } from '../protocol';
import { err, ok, type Result } from '../util/lifecycle';
import { isAlive } from '../util/process';

/** A git command that failed, with what git said. */
export class StateRepoError extends Error {
  constructor(
    message: string,
    /** git's exit code, when git ran. */
    readonly exitCode: number | null = null,
    /** What git wrote to stderr. */
    readonly stderr = '',
  ) {
    super(message);
  }
}

/** Where the private indexes of commits live, under the repository's git folder. */
const PRIVATE_DIR = 'conveyor-state';

export interface StateRepoOptions {
  /** The workspace's repository (its top-level folder), when it is in one. */
  workspaceRepo: string | undefined;
  config: GitOpsConfig;
  /** A folder of the agent's for the clone of another repository. */
  cacheDir: string;
}

/** One commit of the state branch that touched a file. */
export interface StateCommit {
  sha: string;
  /** The commit before it, or null for the branch's first. */
  parent: string | null;
  subject: string;
  author: string;
  date: string;
}

export interface CommitRequest {
  /** Path of the file on the branch, e.g. environments/staging.yml. */
  file: string;
  /** The new text, or null to delete the file. */
  text: string | null;
  message: string;
  /** Who asked, as git's author name ("alice (cli)"). */
  author: string;
}

/**
 * The branch that holds the environments' desired state, in the workspace's own repository or
 * in another one (cloned bare under the agent's folder, fetched on each look, pushed after each
 * commit). Commits are made with git's plumbing on a private index, so the user's working tree,
 * index and checked-out branch are never touched, and a concurrent writer makes the ref update
 * fail rather than lose a commit.
 */
export class StateRepo {
  readonly gitDir: string;
  readonly branch: string;
  readonly remote: string | null;
  private prepared: Promise<void> | undefined;
  /** The folder of the private indexes (known once prepared). */
  private privateDir = '';
  private indexes = 0;
  private writing: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: StateRepoOptions) {
    this.branch = opts.config.branch;
    this.remote = opts.config.repo ? resolveRemote(opts.config.repo, opts.workspaceRepo) : null;
    if (this.remote) {
      const id = createHash('sha256').update(this.remote).digest('hex').slice(0, 12);
      this.gitDir = path.join(opts.cacheDir, `${id}.git`);
    } else {
      if (!opts.workspaceRepo) throw new StateRepoError('the workspace is not in a git repository, so environments have no desired state in git');
      this.gitDir = opts.workspaceRepo;
    }
  }

  /** The file of an environment on the branch. */
  fileOf(environment: string): string {
    return `${this.opts.config.path}/${environment}.yml`;
  }

  private get ref(): string {
    return `refs/heads/${this.branch}`;
  }

  /**
   * Clones another repository once (bare), and removes the private indexes left by an agent that
   * was stopped while it committed. Errors say which repository and why.
   */
  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      if (this.remote && !fs.existsSync(path.join(this.gitDir, 'HEAD'))) {
        fs.mkdirSync(path.dirname(this.gitDir), { recursive: true });
        const tmp = `${this.gitDir}.tmp-${process.pid}`;
        fs.rmSync(tmp, { recursive: true, force: true });
        await run(os.tmpdir(), ['clone', '--bare', '--quiet', '--no-tags', this.remote, tmp]);
        fs.renameSync(tmp, this.gitDir);
      }
      this.privateDir = path.join((await this.git(['rev-parse', '--absolute-git-dir'])).trim(), PRIVATE_DIR);
      removeAbandoned(this.privateDir);
    })().catch((e) => {
      this.prepared = undefined;
      throw e;
    });
    return this.prepared;
  }

  /**
   * Brings the branch up to date with the other repository (nothing to do for the workspace's
   * own). A failure says why; the last fetched state stays.
   */
  async fetch(): Promise<Result<void, string>> {
    if (!this.remote) return ok(undefined);
    try {
      await this.prepare();
      const heads = await this.git(['ls-remote', '--heads', 'origin', this.branch]);
      if (!heads.trim()) return ok(undefined); // the branch does not exist yet: the first commit creates it
      await this.git(['fetch', '--quiet', '--no-tags', 'origin', `+${this.ref}:${this.ref}`]);
      return ok(undefined);
    } catch (e) {
      return err(`could not fetch ${this.branch} from ${this.remote}: ${(e as Error).message}`);
    }
  }

  /**
   * The branch's tip, or null when the branch does not exist yet. Throws (StateRepoError) when
   * git cannot read the branch.
   */
  async tip(): Promise<string | null> {
    await this.prepare();
    try {
      return (await this.git(['rev-parse', '--verify', '--quiet', this.ref])).trim() || null;
    } catch (e) {
      // --quiet: exit 1 and nothing said is "no such branch"; anything else is git failing.
      if (e instanceof StateRepoError && e.exitCode === 1 && !e.stderr.trim()) return null;
      throw new StateRepoError(`git cannot read the branch ${this.branch}: ${gitSaid(e)}`);
    }
  }

  /**
   * A file's text at a revision, or null when the revision has no such file. A file git cannot
   * read (a corrupt or missing object, git failing) throws a StateRepoError that names the file,
   * says what git said and what to do: it is never taken for an absent file.
   */
  async read(file: string, rev: string): Promise<string | null> {
    const unreadable = (e: unknown) =>
      new StateRepoError(
        `git cannot read ${file} at ${rev.slice(0, 7)}: ${gitSaid(e)}. Nothing is committed over it until git can read it: ` +
          `run \`git fsck\` in ${this.gitDir} to see what is damaged, then fetch the branch again or commit the file anew`,
      );
    let entry: string;
    try {
      entry = await this.git(['ls-tree', '-z', rev, '--', file]);
    } catch (e) {
      throw unreadable(e);
    }
    const m = /^\d+ (\w+) ([0-9a-f]+)\t/.exec(entry);
    if (!m) return null;
    if (m[1] !== 'blob') throw unreadable(new Error(`${file} is a ${m[1]}, not a file`));
    try {
      return await this.git(['cat-file', 'blob', m[2]]);
    } catch (e) {
      throw unreadable(e);
    }
  }

  /** The newest commits that changed a file, newest first. */
  async log(file: string, limit = 20): Promise<StateCommit[]> {
    const tip = await this.tip();
    if (!tip) return [];
    const out = await this.git(['log', `-${limit}`, '--format=%H%x1f%P%x1f%s%x1f%an%x1f%cI', tip, '--', file]);
    return out
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [sha, parents, subject, author, date] = l.split('\x1f');
        return { sha, parent: parents.split(' ')[0] || null, subject, author, date };
      });
  }

  /**
   * Commits a file's new text (or its removal) on the branch. Returns the commit, or null when
   * the file already says exactly that. Writes are serialised; a push that loses a race fetches
   * and tries again.
   */
  commit(req: CommitRequest): Promise<string | null> {
    const next = this.writing.then(() => this.commitNow(req));
    this.writing = next.catch(() => undefined);
    return next;
  }

  private async commitNow(req: CommitRequest): Promise<string | null> {
    for (let attempt = 0; ; attempt++) {
      if (this.remote) {
        const f = await this.fetch();
        if (!f.ok) throw new StateRepoError(f.error);
      }
      const parent = await this.tip();
      const current = parent ? await this.read(req.file, parent) : null;
      if (current === req.text) return null;
      await this.prepare();
      fs.mkdirSync(this.privateDir, { recursive: true });
      const index = path.join(this.privateDir, `index-${process.pid}-${++this.indexes}`);
      const env = { GIT_INDEX_FILE: index };
      try {
        if (parent) await this.git(['read-tree', parent], { env });
        else await this.git(['read-tree', '--empty'], { env });
        if (req.text === null) {
          await this.git(['update-index', '--force-remove', '--', req.file], { env });
        } else {
          const blob = (await this.git(['hash-object', '-w', '--stdin'], { input: req.text })).trim();
          await this.git(['update-index', '--add', '--cacheinfo', `100644,${blob},${req.file}`], { env });
        }
        const tree = (await this.git(['write-tree'], { env })).trim();
        const who = authorOf(req.author);
        const commit = (
          await this.git(['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-F', '-'], {
            input: req.message.endsWith('\n') ? req.message : `${req.message}\n`,
            env: { GIT_AUTHOR_NAME: who.name, GIT_AUTHOR_EMAIL: who.email, GIT_COMMITTER_NAME: 'Conveyor', GIT_COMMITTER_EMAIL: 'conveyor@localhost' },
          })
        ).trim();
        if (this.remote) {
          try {
            await this.git(['push', '--quiet', 'origin', `${commit}:${this.ref}`]);
          } catch (e) {
            if (attempt < 3 && /rejected|non-fast-forward|fetch first/i.test((e as Error).message)) continue;
            throw new StateRepoError(`could not push the desired state to ${this.remote}: ${(e as Error).message}`);
          }
        }
        // Compare-and-swap: a commit made meanwhile by someone else makes this fail, and we retry on top of it.
        try {
          await this.git(['update-ref', '-m', 'conveyor: desired state', this.ref, commit, parent ?? '0'.repeat(40)]);
        } catch (e) {
          if (attempt < 3 && !this.remote) {
            // A lock may be a concurrent git's, gone in a moment; one left behind is reported below.
            if (isLocked(e)) await new Promise((r) => setTimeout(r, 200));
            continue;
          }
          if (!this.remote) throw e;
        }
        return commit;
      } finally {
        fs.rmSync(index, { force: true });
        fs.rmSync(`${index}.lock`, { force: true });
      }
    }
  }

  private async git(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<string> {
    return run(this.gitDir, args, opts);
  }
}

/** A relative path names a folder next to the workspace's repository; anything else is a URL. */
function resolveRemote(repo: string, workspaceRepo: string | undefined): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(repo) || /^[^/]+@[^:]+:/.test(repo) || path.isAbsolute(repo)) return repo;
  return path.resolve(workspaceRepo ?? process.cwd(), repo);
}

/** git's author from "alice (cli)": the user's name and a local address. */
function authorOf(actor: string): { name: string; email: string } {
  const name = actor.trim() || 'Conveyor';
  const user = name.split(/\s/)[0].replace(/[^A-Za-z0-9._-]/g, '') || 'conveyor';
  return { name, email: `${user}@localhost` };
}

/** What git said in the end: its last line (the "fatal:" one), or the error's message. */
function gitSaid(e: unknown): string {
  const lines = e instanceof StateRepoError ? e.stderr.trim().split('\n').filter(Boolean) : [];
  return lines.length ? lines[lines.length - 1].trim() : (e as Error).message;
}

const LOCKED = /Unable to create '([^']+\.lock)': File exists/;

function isLocked(e: unknown): boolean {
  return e instanceof StateRepoError && LOCKED.test(e.stderr);
}

/** Removes the private indexes of agents that are gone (stopped while they committed). */
function removeAbandoned(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^index-(\d+)-/.exec(name)?.[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}

function run(cwd: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0', LC_ALL: 'C', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => errOut.push(b));
    child.on('error', (e) => reject(new StateRepoError(`git ${args[0]}: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) return resolve(Buffer.concat(out).toString());
      const said = Buffer.concat(errOut).toString();
      const lock = LOCKED.exec(said)?.[1];
      const message = lock
        ? `git ${args[0]} failed: ${lock} exists, so git cannot change the repository. Another git may be running in it; if none is, ` +
          `one was stopped and left the lock behind: remove ${lock} and try again`
        : `git ${args[0]} failed (exit ${code}): ${said.trim() || 'no output'}`;
      reject(new StateRepoError(message, code, said));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}
