import * as vscode from 'vscode';
import type { DeploymentInfo, EnvironmentStatus, SequencedEvent } from '../../agent/protocol';
import type { AgentHttp } from '../agent/agentApi';
import { followEvents } from '../agent/eventStream';
import type { FolderSession } from '../session/folderSession';
import type { SessionManager } from '../session/sessionManager';
import { errorMessage, Signal, sleep } from '../util/async';
import { isFinished } from './format';

/**
 * The events of the deploy phase and of GitOps (sync status, drift): what the Environments view
 * and the notifications follow.
 */
export type DeployEvent = Extract<
  SequencedEvent,
  { type: 'release.created' | 'deployment.changed' | 'deployment.progress' | 'approval.changed' | 'environment.health' | 'sync.changed' | 'drift.detected' | 'alert.changed' }
>;

const DEPLOY_EVENT_TYPES: ReadonlySet<string> = new Set([
  'release.created',
  'deployment.changed',
  'deployment.progress',
  'approval.changed',
  'environment.health',
  'sync.changed',
  'drift.detected',
  'alert.changed',
]);

function isDeployEvent(e: SequencedEvent): e is DeployEvent {
  return DEPLOY_EVENT_TYPES.has(e.type);
}

/** What changed in one folder's environments. */
export interface EnvironmentsChange {
  session: FolderSession;
  /** The environments whose status changed; undefined when the list itself changed (or was first loaded). */
  names: ReadonlySet<string> | undefined;
}

/** A batch of deploy events of one folder, in sequence order. */
export interface DeployEvents {
  session: FolderSession;
  events: readonly DeployEvent[];
}

/** How many progress lines are kept (one per deployment, the latest). */
const MAX_PROGRESS = 100;
/** How often a command following a deployment asks the agent, besides listening to the events. */
const POLL_MS = 3000;

interface FeedOwner {
  log: vscode.LogOutputChannel;
  changed(feed: EnvironmentFeed, names: ReadonlySet<string> | undefined): void;
  received(feed: EnvironmentFeed, events: DeployEvent[]): void;
}

/**
 * The environments of one folder: GET /api/environments when the folder's agent connects, then
 * again after each batch of deploy events (at most one request in flight, one more if events
 * came meanwhile), which the feed follows on its own event stream from where it was.
 *
 *   waiting for the session ──connected──> seed (health, environments) ──> follow events
 *        ^                                                                    │
 *        └──────────────── stream closed (agent stopped, refresh) <──────────┘
 */
class EnvironmentFeed implements vscode.Disposable {
  statuses: EnvironmentStatus[] | undefined;
  /** Why the last GET /api/environments failed, until one succeeds. */
  problem: string | undefined;
  /** The last seq seen: the stream resumes after it, so events missed while disconnected still come. */
  private lastSeq = 0;
  private readonly progress = new Map<number, string>();
  private readonly wake = new Signal();
  private readonly abort = new AbortController();
  private fetching: Promise<void> | undefined;
  private again = false;
  private readonly sub: vscode.Disposable;

  constructor(
    readonly session: FolderSession,
    private readonly owner: FeedOwner,
  ) {
    this.sub = session.onDidChangeState((state) => {
      this.wake.fire();
      // A Refresh (or a reconnect) reloads the runs; the environments are loaded again with them.
      if (state === 'connected' && session.http) this.requestFetch(session.http);
    });
    void this.run().catch((e: unknown) => owner.log.error(`${session.folder.name}: environments: ${errorMessage(e)}`));
  }

  /** The last progress line of a deployment still in progress. */
  lastProgress(deploymentId: number): string | undefined {
    return this.progress.get(deploymentId);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      const http = this.session.http;
      if (!http) {
        await this.wake.wait(signal);
        continue;
      }
      try {
        const health = await http.health();
        // First contact, or the agent's history restarted: what happened before is in the statuses.
        if (this.lastSeq === 0 || health.lastSeq < this.lastSeq) this.lastSeq = health.lastSeq;
        await this.fetch(http);
        const end = await followEvents(
          http.endpoint,
          () => this.lastSeq,
          {
            onHello: (hello) => {
              if (hello.lastSeq < this.lastSeq) {
                this.lastSeq = 0;
                return false;
              }
              attempt = 0;
              return true;
            },
            onEvents: (events) => this.onEvents(http, events),
          },
          signal,
        );
        this.owner.log.debug(`${this.session.folder.name}: environments event stream ended: ${end.reason}`);
      } catch (e) {
        this.owner.log.debug(`${this.session.folder.name}: environments: ${errorMessage(e)}`);
      }
      if (signal.aborted) return;
      await sleep(Math.min(5000, 200 * 2 ** attempt++), signal);
    }
  }

  private onEvents(http: AgentHttp, events: SequencedEvent[]): void {
    const deploy: DeployEvent[] = [];
    let reload = false;
    const progressed = new Set<string>();
    for (const e of events) {
      if (e.seq > this.lastSeq) this.lastSeq = e.seq;
      // A new config or preview changes the list of environments.
      if (e.type === 'config.changed' || e.type.startsWith('preview.')) reload = true;
      if (!isDeployEvent(e)) continue;
      deploy.push(e);
      if (e.type === 'alert.changed') continue;
      if (e.type === 'deployment.progress') {
        this.progress.delete(e.deploymentId);
        this.progress.set(e.deploymentId, e.message);
        if (this.progress.size > MAX_PROGRESS) this.progress.delete(this.progress.keys().next().value!);
        progressed.add(e.environment);
      } else {
        if (e.type === 'deployment.changed' && isFinished(e.deployment)) this.progress.delete(e.deployment.id);
        reload = true;
      }
    }
    if (deploy.length) this.owner.received(this, deploy);
    if (reload) this.requestFetch(http);
    else if (progressed.size) this.owner.changed(this, progressed);
  }

  /** Loads the statuses again soon: one request at a time, and one more if asked meanwhile. */
  requestFetch(http: AgentHttp): void {
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = (async () => {
      do {
        this.again = false;
        await this.fetch(http);
      } while (this.again && !this.abort.signal.aborted);
    })().finally(() => (this.fetching = undefined));
  }

  /** Loads the statuses now; errors are kept in `problem`, not thrown. */
  async fetch(http: AgentHttp): Promise<void> {
    let next: EnvironmentStatus[];
    try {
      next = await http.request<EnvironmentStatus[]>('GET', '/environments');
    } catch (e) {
      this.problem = errorMessage(e);
      this.owner.log.warn(`${this.session.folder.name}: GET /api/environments: ${this.problem}`);
      return;
    }
    if (this.abort.signal.aborted) return;
    this.problem = undefined;
    const before = this.statuses;
    this.statuses = next;
    const sameList = !!before && before.length === next.length && before.every((s, i) => s.name === next[i].name);
    if (!sameList) return this.owner.changed(this, undefined);
    const changed = new Set(next.filter((s, i) => JSON.stringify(s) !== JSON.stringify(before[i])).map((s) => s.name));
    if (changed.size) this.owner.changed(this, changed);
  }

  /** Waits for the fetch in flight, if any. */
  async settled(): Promise<void> {
    while (this.fetching) await this.fetching;
  }

  dispose(): void {
    this.abort.abort();
    this.sub.dispose();
  }
}

/**
 * What every folder's agent says of its environments (EnvironmentStatus), kept current from the
 * deploy events; the events themselves go on to whoever listens (notifications, commands
 * following a deployment).
 */
export class EnvironmentStore implements vscode.Disposable {
  private readonly feeds = new Map<FolderSession, EnvironmentFeed>();
  private readonly _onDidChange = new vscode.EventEmitter<EnvironmentsChange>();
  /** Statuses changed (after a load, or a deployment's progress line). */
  readonly onDidChange = this._onDidChange.event;
  private readonly _onDidReceive = new vscode.EventEmitter<DeployEvents>();
  /** Deploy events, as they arrive, in order. */
  readonly onDidReceive = this._onDidReceive.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly sessions: SessionManager,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(this._onDidChange, this._onDidReceive, sessions.onDidChangeSessions(() => this.sync()));
    this.sync();
  }

  private sync(): void {
    const live = new Set(this.sessions.list());
    for (const [s, feed] of this.feeds) {
      if (live.has(s)) continue;
      feed.dispose();
      this.feeds.delete(s);
    }
    const owner: FeedOwner = {
      log: this.log,
      changed: (feed, names) => this._onDidChange.fire({ session: feed.session, names }),
      received: (feed, events) => this._onDidReceive.fire({ session: feed.session, events }),
    };
    for (const s of live) if (!this.feeds.has(s)) this.feeds.set(s, new EnvironmentFeed(s, owner));
  }

  /** The environments of a folder as last loaded; undefined before the first load. */
  statuses(session: FolderSession): readonly EnvironmentStatus[] | undefined {
    return this.feeds.get(session)?.statuses;
  }

  status(session: FolderSession, name: string): EnvironmentStatus | undefined {
    return this.statuses(session)?.find((s) => s.name === name);
  }

  /** Why the environments could not be loaded, when they could not. */
  problem(session: FolderSession): string | undefined {
    return this.feeds.get(session)?.problem;
  }

  /** The latest progress line of a deployment in progress ("started release 7 (pid 123)…"). */
  lastProgress(session: FolderSession, deploymentId: number): string | undefined {
    return this.feeds.get(session)?.lastProgress(deploymentId);
  }

  /** The statuses, loaded now from the agent (started if needed): for commands. Throws when it cannot. */
  async load(session: FolderSession): Promise<readonly EnvironmentStatus[]> {
    const http = await session.requireApi();
    const feed = this.feeds.get(session);
    if (!feed) return http.request<EnvironmentStatus[]>('GET', '/environments');
    await feed.settled();
    await feed.fetch(http);
    if (!feed.statuses) throw new Error(feed.problem ?? 'the agent did not list the environments');
    return feed.statuses;
  }

  /** Waits for every load in flight (tests). */
  async settled(): Promise<void> {
    await Promise.all([...this.feeds.values()].map((f) => f.settled()));
  }

  /**
   * Follows a deployment until it ends (from the events, and by asking the agent every few
   * seconds, so a dropped connection does not leave it waiting), telling `onUpdate` of each new
   * status and progress line. Cancelling stops following: it resolves with the last status known.
   */
  waitForEnd(
    session: FolderSession,
    deployment: DeploymentInfo,
    onUpdate: (update: { deployment: DeploymentInfo; message?: string }) => void,
    token?: vscode.CancellationToken,
  ): Promise<DeploymentInfo> {
    if (isFinished(deployment)) return Promise.resolve(deployment);
    return new Promise((resolve) => {
      let last = deployment;
      let done = false;
      const finish = (d: DeploymentInfo) => {
        if (done) return;
        done = true;
        clearInterval(timer);
        sub.dispose();
        cancel?.dispose();
        resolve(d);
      };
      const take = (d: DeploymentInfo) => {
        if (done) return;
        if (d.status !== last.status) onUpdate({ deployment: d });
        last = d;
        if (isFinished(d)) finish(d);
      };
      const sub = this.onDidReceive((batch) => {
        if (batch.session !== session) return;
        for (const e of batch.events) {
          if (e.type === 'deployment.changed' && e.deployment.id === deployment.id) take(e.deployment);
          else if (e.type === 'deployment.progress' && e.deploymentId === deployment.id && !done) onUpdate({ deployment: last, message: e.message });
        }
      });
      const poll = async () => {
        const http = session.http;
        if (!http || done) return;
        try {
          take(await http.request<DeploymentInfo>('GET', `/deployments/${deployment.id}`));
        } catch (e) {
          this.log.debug(`${session.folder.name}: deploy #${deployment.id}: ${errorMessage(e)}`);
        }
      };
      const timer = setInterval(() => void poll(), POLL_MS);
      const cancel = token?.onCancellationRequested(() => finish(last));
      // An end that came before the subscription is found by asking once now.
      void poll();
    });
  }

  dispose(): void {
    for (const feed of this.feeds.values()) feed.dispose();
    this.feeds.clear();
    for (const d of this.disposables.splice(0).reverse()) d.dispose();
  }
}
