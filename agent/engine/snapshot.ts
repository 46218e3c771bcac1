import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { git, type RepoInfo } from './git';

/**
 * A clean copy of one commit for a run to execute in: a detached git worktree under
 * `.conveyor/work/`, never the user's working tree. Removed when the run ends; leftovers of a
 * crashed agent are pruned at the next start.
 */
export interface Snapshot {
  /** The folder that corresponds to the workspace folder inside the snapshot. */
  readonly dir: string;
  dispose(): Promise<void>;
}

export async function createSnapshot(repo: RepoInfo, workDir: string, name: string, sha: string): Promise<Snapshot> {
  const root = path.join(workDir, name);
  await fs.rm(root, { recursive: true, force: true });
  await fs.mkdir(workDir, { recursive: true });
  await git(repo.root, ['worktree', 'add', '--detach', '--force', root, sha]);
  return {
    dir: repo.prefix ? path.join(root, ...repo.prefix.split('/')) : root,
    async dispose() {
      try {
        await git(repo.root, ['worktree', 'remove', '--force', '--force', root]);
      } catch {
        // The folder may be gone already; the prune below tidies git's records.
      }
      await fs.rm(root, { recursive: true, force: true });
      await git(repo.root, ['worktree', 'prune']).catch(() => undefined);
    },
  };
}

/** Removes snapshots left by an agent that did not end cleanly. */
export async function pruneSnapshots(repo: RepoInfo | undefined, workDir: string): Promise<void> {
  await fs.rm(workDir, { recursive: true, force: true });
  if (repo) await git(repo.root, ['worktree', 'prune']).catch(() => undefined);
}
