import { branchTips, currentBranch, GitError } from '../engine/git';
import type { Store } from '../store/store';
import { reportUnexpected, type IDisposable } from '../util/lifecycle';

export interface CommitWatcherOptions {
  /** Any folder inside the repository. */
  cwd: string;
  store: Store;
  /** Branches to follow; empty means the branch checked out at each look. */
  branches(): readonly string[];
  /** Called once per new tip of a followed branch. */
  onNewTip(branch: string, sha: string): void;
  intervalMs?: number;
}

/**
 * Notices new commits however they were made (the editor, a terminal, another tool) by looking
 * at the branch tips on an interval, and asks for one run per new tip: commits that land between
 * two looks make one run, of the newest. The last tip seen per branch is kept in the store, so
 * commits made while the agent was down start a run when it comes back. A branch seen for the
 * first time is recorded, not run.
 *
 *   look ──> tips of followed branches ──> tip != last seen ? onNewTip : nothing ──> wait ──> look
 */
export class CommitWatcher implements IDisposable {
  private timer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(private readonly opts: CommitWatcherOptions) {}

  start(): void {
    void this.look();
  }

  /** Looks now (tests and `sync`-style commands use it); the interval goes on. */
  async look(): Promise<void> {
    clearTimeout(this.timer);
    try {
      let branches = [...this.opts.branches()];
      if (branches.length === 0) {
        const current = await currentBranch(this.opts.cwd);
        branches = current ? [current] : [];
      }
      const tips = await branchTips(this.opts.cwd, branches);
      for (const [branch, sha] of tips) {
        if (this.disposed) return;
        const key = `tip:${branch}`;
        const last = this.opts.store.getMeta(key);
        if (last === sha) continue;
        this.opts.store.setMeta(key, sha);
        if (last !== undefined) this.opts.onNewTip(branch, sha);
      }
    } catch (e) {
      // A repository in the middle of a rebase or gc can fail a look; the next one retries.
      if (!(e instanceof GitError)) reportUnexpected(e);
    } finally {
      if (!this.disposed) this.timer = setTimeout(() => void this.look(), this.opts.intervalMs ?? 1000);
    }
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
  }
}
