import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { GitOpsConfig } from '../protocol';
import { err, ok, type Result } from '../util/lifecycle';

/** A git command that failed, with what git said. */
export class StateRepoError extends Error {}

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

  /** Clones another repository once (bare). Errors say which repository and why. */
  private prepare(): Promise<void> {
    if (!this.remote) return Promise.resolve();
    this.prepared ??= (async () => {
      if (fs.existsSync(path.join(this.gitDir, 'HEAD'))) return;
      fs.mkdirSync(path.dirname(this.gitDir), { recursive: true });
      const tmp = `${this.gitDir}.tmp-${process.pid}`;
      fs.rmSync(tmp, { recursive: true, force: true });
      await run(os.tmpdir(), ['clone', '--bare', '--quiet', '--no-tags', this.remote!, tmp]);
      fs.renameSync(tmp, this.gitDir);
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

  /** The branch's tip, or null when it has no commit yet. */
  async tip(): Promise<string | null> {
    await this.prepare();
    try {
      return (await this.git(['rev-parse', '--verify', '--quiet', `${this.ref}^{commit}`])).trim() || null;
    } catch {
      return null;
    }
  }

  /** A file's text at a revision, or null when it is not there. */
  async read(file: string, rev: string): Promise<string | null> {
    try {
      return await this.git(['show', `${rev}:${file}`]);
    } catch {
      return null;
    }
  }

  /** The files directly in a folder at a revision. */
  async list(folder: string, rev: string): Promise<string[]> {
    try {
      const out = await this.git(['ls-tree', '--name-only', `${rev}:${folder}`]);
      return out.split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  /** The newest commits that changed a file, newest first. */
  async log(file: string, limit = 20): Promise<StateCommit[]> {
    const tip = await this.tip();
    if (!tip) return [];
    const out = await this.git(['log', `-${limit}`, '--format=%H%x1f%s%x1f%an%x1f%cI', tip, '--', file]);
    return out
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [sha, subject, author, date] = l.split('\x1f');
        return { sha, subject, author, date };
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
      const index = path.join(os.tmpdir(), `conveyor-state-index-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
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
          if (attempt < 3 && !this.remote) continue;
          if (!this.remote) throw e;
        }
        return commit;
      } finally {
        fs.rmSync(index, { force: true });
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
      if (code === 0) resolve(Buffer.concat(out).toString());
      else reject(new StateRepoError(`git ${args[0]} failed (exit ${code}): ${Buffer.concat(errOut).toString().trim() || 'no output'}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}
