import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** A git command that failed, with what git said. */
export class GitError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    readonly code: number | null,
  ) {
    super(`git ${args.join(' ')} failed${code !== null ? ` (exit ${code})` : ''}: ${stderr.trim() || 'no output'}`);
  }
}

/** Runs git in `cwd` and returns its stdout. Never prompts (no terminal, no credential helper UI). */
export function git(cwd: string, args: string[], opts: { maxBuffer?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
      {
        cwd,
        maxBuffer: opts.maxBuffer ?? 64 * 1024 * 1024,
        env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0', LC_ALL: 'C' },
      },
      (error, stdout, stderr) => {
        if (error) {
          const code = typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : null;
          reject(new GitError(args, stderr || error.message, code));
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/** The repository that holds a workspace folder, which may be a subfolder of it. */
export interface RepoInfo {
  /** Absolute path of the repository's top-level folder. */
  root: string;
  /** The workspace folder relative to `root`, with forward slashes; '' when they are the same. */
  prefix: string;
}

export async function findRepo(workspace: string): Promise<RepoInfo | undefined> {
  try {
    const root = (await git(workspace, ['rev-parse', '--show-toplevel'])).trim();
    const real = await fs.realpath(workspace);
    const prefix = path.relative(await fs.realpath(root), real).split(path.sep).join('/');
    return { root, prefix };
  } catch {
    return undefined;
  }
}

/** Resolves any revision to a full commit SHA, or undefined if git knows no such commit. */
export async function resolveCommit(cwd: string, rev: string): Promise<string | undefined> {
  if (rev.startsWith('-')) return undefined;
  try {
    return (await git(cwd, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`])).trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function commitTitle(cwd: string, sha: string): Promise<string | null> {
  try {
    return (await git(cwd, ['log', '-1', '--format=%s', sha])).trim() || null;
  } catch {
    return null;
  }
}

/** The commit's committer date as ISO-8601 UTC, or null when git cannot tell. */
export async function commitTime(cwd: string, sha: string): Promise<string | null> {
  try {
    const text = (await git(cwd, ['log', '-1', '--format=%cI', sha])).trim();
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? null : new Date(ms).toISOString();
  } catch {
    return null;
  }
}

/** The checked-out branch, or null when HEAD is detached or the repository has no commit. */
export async function currentBranch(cwd: string): Promise<string | null> {
  try {
    const ref = (await git(cwd, ['symbolic-ref', '--quiet', '--short', 'HEAD'])).trim();
    return ref || null;
  } catch {
    return null;
  }
}

/** Tip SHA of each existing local branch among `branches`. */
export async function branchTips(cwd: string, branches: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (branches.length === 0) return out;
  const text = await git(cwd, ['for-each-ref', '--format=%(refname:short) %(objectname)', ...branches.map((b) => `refs/heads/${b}`)]);
  for (const line of text.split('\n')) {
    const [name, sha] = line.trim().split(' ');
    if (name && sha) out.set(name, sha);
  }
  return out;
}

/** The text of `file` (relative to the repository root) at `sha`, or undefined when not committed there. */
export async function showFile(cwd: string, sha: string, file: string): Promise<string | undefined> {
  try {
    return await git(cwd, ['show', `${sha}:${file}`]);
  } catch {
    return undefined;
  }
}
