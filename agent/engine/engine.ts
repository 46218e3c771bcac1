import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { glob, globSync } from 'tinyglobby';
import { analyzeConfigText, CONFIG_FILE_NAMES } from '../config';
import type {
  AgentEvent,
  ApiError,
  ConfigState,
  ConveyorConfig,
  MatrixCell,
  RunStatus,
  RunSummary,
  StageConfig,
  StageInfo,
  StageStatus,
  StageTrigger,
  StartRunRequest,
  TestImpact,
  TestResult,
  Trigger,
} from '../protocol';
import { FINISHED_STAGE_STATUSES } from '../protocol';
import { readReport } from '../reports';
import { AcceptanceExecutor } from '../steps/acceptance';
import { CommandExecutor, stopLeftoverGroups } from '../steps/command';
import { DeployExecutor } from '../steps/deploy';
import { ImageExecutor } from '../steps/image';
import { IntegrationExecutor } from '../steps/integration';
import { LoadExecutor } from '../steps/load';
import { ScanExecutor } from '../steps/scan';
import { SmokeExecutor } from '../steps/smoke';
import { stageLogFolder, type AttemptOutcome, type DeployPort, type StageExecutor } from '../steps/executor';
import type { Store } from '../store/store';
import { Deferred, err, ok, reportUnexpected, type Result } from '../util/lifecycle';
import { selectStages, shuffled } from './dag';
import { commitTime, commitTitle, currentBranch, resolveCommit, showFile, type RepoInfo } from './git';
import { Masker, resolveSecrets } from './secrets';
import { createSnapshot, pruneSnapshots, type Snapshot } from './snapshot';

export interface EngineOptions {
  /** Absolute path of the workspace folder (where conveyor.yml is). */
  workspace: string;
  /** The agent's own folder: `<workspace>/.conveyor`. */
  conveyorDir: string;
  store: Store;
  repo: RepoInfo | undefined;
  /** The config as it is in the working tree now. */
  currentConfig(): ConfigState;
  /** Start ready stages in random order, to expose missing `needs` (tests set it). */
  shuffle?: boolean;
  /** The environment steps inherit. Default: the agent's. */
  env?: NodeJS.ProcessEnv;
  /** The deploy phase, for deploy stages. */
  deployer?: DeployPort;
}

export interface RunRequest extends Omit<StartRunRequest, 'trigger'> {
  trigger: Trigger;
  /** For save runs: the tests the develop loop chose. */
  impact?: TestImpact;
  /** The branch a commit trigger saw move. */
  branch?: string;
}

/** Longest text kept per field of a test result (messages, stacks). */
const MAX_TEST_FIELD = 16 * 1024;
/**
 * Characters of test messages (and stacks, expected and actual values) one report keeps in full,
 * failures first; each field of the results past it keeps SHORT_TEST_FIELD characters.
 */
const REPORT_TEXT_BUDGET = 4 * 1024 * 1024;
const SHORT_TEST_FIELD = 200;
/** A report's results go out in events of at most this many results, or about this much JSON. */
const RESULTS_PER_EVENT = 1000;
const RESULTS_EVENT_BYTES = 1024 * 1024;
/**
 * Longest list of test files put in $CONVEYOR_TESTS, in bytes. One variable may hold 128 KiB and
 * a process's command and variables together not much more; a longer list is only in the file.
 */
const TESTS_VARIABLE_LIMIT = 32 * 1024;

/**
 * Runs wait in lanes, one run in flight per lane. Commit, manual and API runs share the pipeline
 * lane (queued or superseding, as configured); save runs have their own, where a new one always
 * supersedes the older one, so the develop loop never waits behind a release build.
 */
type LaneName = 'pipeline' | 'save';

interface Lane {
  active: Execution | undefined;
  queue: Execution[];
}

/** One run in flight or waiting. */
interface Execution {
  lane: LaneName;
  /** The tests a save run chose; every stage gets them as $CONVEYOR_TESTS. */
  impact: TestImpact | null;
  summary: RunSummary;
  config: ConveyorConfig;
  stages: Map<string, StageInfo>;
  /** The stages to run by name, with each matrix stage's cells as stages of their own. */
  plan: Map<string, StageConfig>;
  /** Each matrix stage's cells, by name. */
  cellsOf: Map<string, string[]>;
  controller: AbortController;
  /** Set when the run is cancelled: by whom or why. */
  cancelled: { status: RunStatus; reason: string } | null;
  done: Deferred;
  /** Every file matching watch.tests in the run's tree, found once. */
  allTests?: string[];
  /** The file that lists the run's test files one per line ($CONVEYOR_TESTS_FILE), once written. */
  testsFile?: string;
}

/**
 * Schedules runs: one run of the pipeline at a time (the next ones queue, or supersede it, as
 * configured); inside a run, the stages of the DAG in parallel up to `maxParallel`. Every state
 * change goes out as an event through the store.
 */
export class Engine {
  private readonly executors: ReadonlyMap<string, StageExecutor>;
  private readonly lanes: Record<LaneName, Lane> = { pipeline: { active: undefined, queue: [] }, save: { active: undefined, queue: [] } };
  private readonly byId = new Map<number, Execution>();
  private readonly workDir: string;
  private nextId: number;
  private stopping = false;

  constructor(private readonly opts: EngineOptions) {
    const image = new ImageExecutor({
      stateDir: path.join(opts.conveyorDir, 'runtimes'),
      pipeline: () => {
        const c = opts.currentConfig();
        return c.valid ? c.config.pipeline.name : path.basename(opts.workspace);
      },
    });
    const commands = new CommandExecutor(opts.store);
    const scope = createHash('sha256').update(opts.conveyorDir).digest('hex').slice(0, 12);
    this.executors = new Map<string, StageExecutor>([
      ['command', commands],
      ['image', image],
      ['deploy', new DeployExecutor()],
      ['smoke', new SmokeExecutor()],
      ['integration', new IntegrationExecutor({ scope, activeRuns: () => this.activeRunIds }, commands)],
      ['acceptance', new AcceptanceExecutor(commands)],
      // A cell of a matrix stage runs its commands as a command stage does.
      ['matrix', commands],
      ['load', new LoadExecutor()],
      ['scan', new ScanExecutor({ workspace: opts.workspace })],
    ]);
    this.workDir = path.join(opts.conveyorDir, 'work');
    this.nextId = opts.store.nextRunId();
  }

  private emit(event: AgentEvent): void {
    this.opts.store.append(event);
  }

  /**
   * Stops the step processes a previous agent left running (SIGTERM, then SIGKILL after the grace
   * a cancelled step gets), marks the runs it left queued or running as interrupted, and removes
   * its snapshots. Returns their ids.
   */
  async recover(): Promise<number[]> {
    const left = this.opts.store.stepProcesses();
    await stopLeftoverGroups(left);
    for (const p of left) this.opts.store.forgetStepProcess(p.pgid);
    const ids: number[] = [];
    const now = new Date().toISOString();
    for (const run of this.opts.store.unfinishedRuns()) {
      for (const step of run.steps) {
        if (step.status === 'running' || step.status === 'pending') {
          this.emit({ type: 'step.changed', step: { ...step, status: 'interrupted', finishedAt: now } });
        }
      }
      for (const stage of run.stages) {
        if (stage.status === 'running') {
          this.emit({ type: 'stage.changed', stage: { ...stage, status: 'interrupted', finishedAt: now, message: 'the agent stopped while this stage ran' } });
        } else if (stage.status === 'pending') {
          this.emit({ type: 'stage.changed', stage: { ...stage, status: 'skipped', message: 'the agent stopped before this stage started' } });
        }
      }
      const { stages: _s, steps: _st, artifacts: _a, firstSeq: _f, ...summary } = run;
      this.emit({
        type: 'run.finished',
        run: { ...summary, status: 'interrupted', finishedAt: now, reason: 'the agent stopped while this run was in progress; re-run it with: conveyor rerun ' + run.id },
      });
      ids.push(run.id);
    }
    await pruneSnapshots(this.opts.repo, this.workDir);
    return ids;
  }

  get activeRunIds(): number[] {
    return this.all().map((x) => x.summary.id);
  }

  private all(): Execution[] {
    return Object.values(this.lanes).flatMap((l) => [l.active, ...l.queue]).filter((x): x is Execution => !!x);
  }

  /** Validates the request and queues the run; resolves once it is queued, not when it ends. */
  async start(req: RunRequest): Promise<Result<RunSummary, ApiError>> {
    if (this.stopping) return err({ error: 'the agent is stopping', fix: 'start it again and retry' });
    const workingTree = req.workingTree === true;
    if (workingTree && req.commit) {
      return err({ error: 'a run is either pinned to a commit or on the working tree, not both', fix: 'drop --commit or --working-tree' });
    }
    let config: ConveyorConfig;
    let commit: string | null = null;
    let branch: string | null = req.branch ?? null;
    let title: string | null = null;
    let committedAt: string | null = null;
    const repo = this.opts.repo;
    if (workingTree) {
      const state = this.opts.currentConfig();
      if (!state.valid) return err(invalidConfig(state));
      config = state.config;
      branch = repo ? await currentBranch(this.opts.workspace) : null;
      title = 'working tree';
    } else {
      if (!repo) {
        return err({
          error: `${this.opts.workspace} is not in a git repository, so there is no commit to run`,
          fix: 'run "git init" and commit, or run on the working tree (conveyor run --working-tree)',
        });
      }
      const rev = req.commit ?? 'HEAD';
      const sha = await resolveCommit(this.opts.workspace, rev);
      if (!sha) {
        return err({
          error: rev === 'HEAD' ? 'the repository has no commit yet' : `git knows no commit "${rev}"`,
          fix: rev === 'HEAD' ? 'commit your work, or run on the working tree (--working-tree)' : 'give a SHA, branch or tag that exists (git log shows them)',
        });
      }
      const loaded = await this.configAt(sha);
      if (!loaded.ok) {
        // A commit nobody asked about directly still shows up, as a failed run saying why.
        if (req.trigger === 'commit') this.recordRejected(req, sha, loaded.error);
        return loaded;
      }
      config = loaded.value;
      commit = sha;
      title = await commitTitle(this.opts.workspace, sha);
      committedAt = await commitTime(this.opts.workspace, sha);
      if (!branch && !req.commit) branch = await currentBranch(this.opts.workspace);
      // A run asked for by branch name is that branch's run (previews look runs up by branch).
      if (!branch && req.commit && (await resolveCommit(this.opts.workspace, `refs/heads/${req.commit}`)) === sha) branch = req.commit;
    }
    const stageTrigger: StageTrigger = req.trigger === 'commit' ? 'commit' : req.trigger === 'save' ? 'save' : 'manual';
    const selection = selectStages(config.pipeline.stages, stageTrigger, req.stages);
    if (!selection.ok) return err({ error: selection.error, fix: selection.fix });

    const id = this.nextId++;
    const summary: RunSummary = {
      id,
      pipeline: config.pipeline.name,
      trigger: req.trigger,
      status: 'queued',
      commit,
      commitTime: committedAt,
      branch,
      title,
      requestedStages: selection.names,
      queuedAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
      reason: null,
      impact: req.impact ?? null,
    };
    const stages = new Map<string, StageInfo>();
    const plan = new Map<string, StageConfig>();
    const cellsOf = new Map<string, string[]>();
    const pendingStage = (s: StageConfig): StageInfo => ({
      runId: id,
      name: s.name,
      kind: s.kind,
      status: 'pending',
      needs: s.needs,
      attempt: 0,
      startedAt: null,
      finishedAt: null,
      message: null,
    });
    for (const s of config.pipeline.stages) {
      if (!selection.names.includes(s.name)) continue;
      stages.set(s.name, pendingStage(s));
      plan.set(s.name, s);
      if (s.kind !== 'matrix' || !s.matrix) continue;
      const cells = matrixCellStages(s);
      cellsOf.set(s.name, cells.map((c) => c.stage.name));
      for (const c of cells) {
        plan.set(c.stage.name, c.stage);
        stages.set(c.stage.name, { ...pendingStage(c.stage), matrix: c.cell });
      }
    }
    const laneName: LaneName = req.trigger === 'save' ? 'save' : 'pipeline';
    const lane = this.lanes[laneName];
    const x: Execution = {
      lane: laneName,
      impact: req.impact ?? (req.tests?.length ? { mode: 'affected', changed: [], tests: [...req.tests], reason: 'asked for' } : null),
      summary,
      config,
      stages,
      plan,
      cellsOf,
      controller: new AbortController(),
      cancelled: null,
      done: new Deferred(),
    };
    this.byId.set(id, x);
    this.emit({ type: 'run.queued', run: summary });
    for (const stage of stages.values()) this.emit({ type: 'stage.changed', stage });

    if (laneName === 'save' || config.pipeline.onNewRun === 'supersede') {
      for (const older of [lane.active, ...lane.queue]) {
        if (older && older !== x) this.cancelExecution(older, 'cancelled', `superseded by #${id}`);
      }
    }
    lane.queue.push(x);
    this.pump(laneName);
    return ok(summary);
  }

  /** Records a run that could not start (its committed config is invalid) as failed. */
  private recordRejected(req: RunRequest, sha: string, error: ApiError): void {
    void commitTitle(this.opts.workspace, sha).then((title) => {
      const now = new Date().toISOString();
      const run: RunSummary = {
        id: this.nextId++,
        pipeline: path.basename(this.opts.workspace),
        trigger: req.trigger,
        status: 'queued',
        commit: sha,
        branch: req.branch ?? null,
        title,
        requestedStages: [],
        queuedAt: now,
        startedAt: null,
        finishedAt: null,
        reason: null,
        impact: null,
      };
      this.emit({ type: 'run.queued', run });
      this.emit({ type: 'run.finished', run: { ...run, status: 'failed', finishedAt: now, reason: error.error } });
    });
  }

  /** Cancels a queued or running run. */
  cancel(id: number): Result<RunSummary, ApiError> {
    const x = this.byId.get(id);
    if (!x) {
      const run = this.opts.store.getRun(id);
      if (!run) return err({ error: `no run #${id}`, fix: 'conveyor history lists the runs' });
      const { stages: _s, steps: _st, artifacts: _a, firstSeq: _f, ...summary } = run;
      return ok(summary); // already finished: cancelling is a no-op
    }
    this.cancelExecution(x, 'cancelled', 'cancelled by request');
    return ok(x.summary);
  }

  /** Starts a new run of the same commit (or working tree) and stages as an earlier one. */
  async rerun(id: number, trigger: 'manual' | 'api'): Promise<Result<RunSummary, ApiError>> {
    const run = this.opts.store.getRun(id);
    if (!run) return err({ error: `no run #${id}`, fix: 'conveyor history lists the runs' });
    return this.start({
      trigger,
      stages: run.requestedStages,
      commit: run.commit ?? undefined,
      workingTree: run.commit === null,
      branch: run.branch ?? undefined,
    });
  }

  /** Resolves when the run has finished (at once if it is not in flight). */
  async whenFinished(id: number): Promise<void> {
    await this.byId.get(id)?.done.promise;
  }

  /** Cancels everything in flight, marking it interrupted, and waits for the processes to end. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    const all = this.all();
    for (const x of all) this.cancelExecution(x, 'interrupted', 'the agent was stopped while this run was in progress');
    await Promise.all(all.map((x) => x.done.promise));
  }

  private cancelExecution(x: Execution, status: RunStatus, reason: string): void {
    if (x.cancelled || x.done.settled) return;
    x.cancelled = { status, reason };
    const queue = this.lanes[x.lane].queue;
    const queued = queue.indexOf(x);
    if (queued >= 0) {
      queue.splice(queued, 1);
      for (const stage of x.stages.values()) this.setStage(x, stage.name, { status: 'skipped', message: reason });
      this.finish(x, status, reason);
      return;
    }
    x.controller.abort('cancel');
  }

  private pump(name: LaneName): void {
    const lane = this.lanes[name];
    if (lane.active || this.stopping) return;
    const next = lane.queue.shift();
    if (!next) return;
    lane.active = next;
    this.execute(next)
      .catch((e: unknown) => {
        reportUnexpected(e);
        for (const stage of next.stages.values()) {
          if (!FINISHED_STAGE_STATUSES.includes(stage.status)) this.setStage(next, stage.name, { status: 'failed', message: 'internal error' });
        }
        this.finish(next, 'failed', `internal error: ${(e as Error)?.message ?? String(e)}`);
      })
      .finally(() => {
        lane.active = undefined;
        this.pump(name);
      });
  }

  private async configAt(sha: string): Promise<Result<ConveyorConfig, ApiError>> {
    const repo = this.opts.repo!;
    for (const name of CONFIG_FILE_NAMES) {
      const rel = repo.prefix ? `${repo.prefix}/${name}` : name;
      const text = await showFile(repo.root, sha, rel);
      if (text === undefined) continue;
      const state = analyzeConfigText(text, path.join(this.opts.workspace, name), { defaultName: path.basename(this.opts.workspace) });
      if (!state.valid) {
        const e = invalidConfig(state);
        return err({ ...e, error: `${name} at ${sha.slice(0, 7)} is not valid: ${e.error}`, fix: 'fix it and commit, or run on the working tree (--working-tree)' });
      }
      return ok(state.config);
    }
    return err({
      error: `conveyor.yml is not committed at ${sha.slice(0, 7)}`,
      fix: 'commit conveyor.yml, or run on the working tree (conveyor run --working-tree)',
    });
  }

  private async execute(x: Execution): Promise<void> {
    x.summary = { ...x.summary, status: 'running', startedAt: new Date().toISOString() };
    this.emit({ type: 'run.started', run: x.summary });

    let snapshot: Snapshot | undefined;
    let root = this.opts.workspace;
    try {
      if (x.summary.commit) {
        try {
          snapshot = await createSnapshot(this.opts.repo!, this.workDir, `run-${x.summary.id}`, x.summary.commit);
          root = snapshot.dir;
        } catch (e) {
          const reason = `could not make a snapshot of ${x.summary.commit.slice(0, 7)}: ${(e as Error).message}`;
          for (const stage of x.stages.values()) this.setStage(x, stage.name, { status: 'skipped', message: reason });
          this.finish(x, 'failed', reason);
          return;
        }
      }
      const secrets = resolveSecrets(x.config.secrets, this.opts.workspace, this.opts.env ?? process.env);
      const masker = new Masker(secrets.values.values());
      await this.schedule(x, root, secrets.values, masker);
    } finally {
      await snapshot?.dispose();
      if (x.testsFile) await fsp.rm(x.testsFile, { force: true });
    }
    // An optional matrix cell may fail: its matrix stage says so and still succeeds.
    const failed = [...x.stages.values()].filter((s) => (s.status === 'failed' || s.status === 'timed_out') && !s.matrix?.optional).map((s) => s.name);
    if (x.cancelled) {
      this.finish(x, x.cancelled.status, x.cancelled.reason);
    } else if (failed.length > 0) {
      this.finish(x, 'failed', `${failed.join(', ')} ${failed.length === 1 ? 'did' : 'did'} not succeed`);
    } else {
      this.finish(x, 'succeeded', null);
    }
  }

  /** Runs the DAG: a stage starts when all it needs succeeded; one that cannot is skipped. */
  private async schedule(x: Execution, root: string, secrets: Map<string, string>, masker: Masker): Promise<void> {
    const configs = x.plan;
    const pending = new Set(x.stages.keys());
    const running = new Map<string, Promise<void>>();
    const max = x.config.pipeline.maxParallel;
    for (;;) {
      let changed = true;
      while (changed) {
        changed = false;
        const order = this.opts.shuffle ? shuffled([...pending]) : [...pending];
        for (const name of order) {
          const cells = x.cellsOf.get(name);
          if (cells) {
            // A matrix stage runs nothing itself: it settles once every cell has.
            const infos = cells.map((c) => x.stages.get(c)!);
            if (infos.every((c) => FINISHED_STAGE_STATUSES.includes(c.status))) {
              pending.delete(name);
              this.settleMatrix(x, name, infos);
              changed = true;
            } else if (x.stages.get(name)!.status === 'pending' && infos.some((c) => c.status !== 'pending')) {
              this.setStage(x, name, { status: 'running', startedAt: new Date().toISOString() });
            }
            continue;
          }
          if (x.cancelled) {
            pending.delete(name);
            this.setStage(x, name, { status: 'skipped', message: x.cancelled.reason });
            changed = true;
            continue;
          }
          const needs = configs.get(name)!.needs.map((n) => x.stages.get(n)!);
          const blocked = needs.find((n) => FINISHED_STAGE_STATUSES.includes(n.status) && n.status !== 'succeeded');
          if (blocked) {
            pending.delete(name);
            this.setStage(x, name, { status: 'skipped', message: `needs ${blocked.name} (${blocked.status.replace('_', ' ')})` });
            changed = true;
            continue;
          }
          if (running.size < max && needs.every((n) => n.status === 'succeeded')) {
            pending.delete(name);
            const p = this.runStage(x, configs.get(name)!, root, secrets, masker)
              .catch((e: unknown) => {
                reportUnexpected(e);
                this.setStage(x, name, { status: 'failed', finishedAt: new Date().toISOString(), message: `internal error: ${(e as Error)?.message}` });
              })
              .finally(() => running.delete(name));
            running.set(name, p);
            changed = true;
          }
        }
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
  }

  /**
   * A matrix stage's status from its cells': succeeded when every cell that is not optional did
   * (the message names the optional ones that did not), failed otherwise; skipped or cancelled
   * with the run or with what it needs.
   */
  private settleMatrix(x: Execution, name: string, cells: StageInfo[]): void {
    const finishedAt = new Date().toISOString();
    const describe = (list: StageInfo[]) => list.map((c) => `${cellLabel(c.matrix!)} (${c.status.replace('_', ' ')})`).join('; ');
    const blocked = x.plan.get(name)!.needs.map((n) => x.stages.get(n)!).find((n) => n.status !== 'succeeded');
    if (cells.every((c) => c.status === 'skipped') && (x.cancelled || blocked)) {
      const message = x.cancelled ? x.cancelled.reason : `needs ${blocked!.name} (${blocked!.status.replace('_', ' ')})`;
      this.setStage(x, name, { status: 'skipped', message });
      return;
    }
    if (x.cancelled) {
      this.setStage(x, name, { status: 'cancelled', finishedAt, message: x.cancelled.reason });
      return;
    }
    const required = cells.filter((c) => !c.matrix!.optional && c.status !== 'succeeded');
    const optional = cells.filter((c) => c.matrix!.optional && c.status !== 'succeeded');
    if (required.length > 0) {
      this.setStage(x, name, { status: 'failed', finishedAt, message: `${required.length} of ${cells.length} cells did not succeed: ${describe(required)}` });
    } else {
      const message = optional.length > 0 ? `every required cell succeeded; optional: ${describe(optional)}` : `${cells.length} cells succeeded`;
      this.setStage(x, name, { status: 'succeeded', finishedAt, message });
    }
  }

  private async runStage(x: Execution, stage: StageConfig, root: string, secrets: Map<string, string>, masker: Masker): Promise<void> {
    const cwd = path.resolve(root, stage.workdir);
    const startedAt = new Date().toISOString();
    if (!fs.existsSync(cwd)) {
      this.setStage(x, stage.name, {
        status: 'failed',
        attempt: 1,
        startedAt,
        finishedAt: startedAt,
        message: `working directory "${stage.workdir}" does not exist${x.summary.commit ? ` at ${x.summary.commit.slice(0, 7)}` : ''}`,
      });
      return;
    }
    const executor = this.executors.get(stage.kind);
    if (!executor) {
      this.setStage(x, stage.name, { status: 'failed', attempt: 1, startedAt, finishedAt: startedAt, message: `this agent cannot run stages of kind "${stage.kind}"` });
      return;
    }
    const logRoot = path.join(this.opts.conveyorDir, 'logs', String(x.summary.id), stageLogFolder(stage.name));
    let outcome: AttemptOutcome = { status: 'failed', message: null };
    const attempts = stage.retries + 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.setStage(x, stage.name, {
        status: 'running',
        attempt,
        startedAt,
        message: attempt > 1 ? `attempt ${attempt} of ${attempts} (attempt ${attempt - 1}: ${outcome.message ?? outcome.status})` : null,
      });
      const attemptCtl = new AbortController();
      const onRunAbort = () => attemptCtl.abort('cancel');
      x.controller.signal.addEventListener('abort', onRunAbort, { once: true });
      if (x.controller.signal.aborted) attemptCtl.abort('cancel');
      const timer = stage.timeoutMs > 0 ? setTimeout(() => attemptCtl.abort('timeout'), stage.timeoutMs) : undefined;
      const reportFile = stage.report ? path.resolve(cwd, stage.report.path) : undefined;
      const reportBefore = reportFile ? mtimeOf(reportFile) : undefined;
      try {
        outcome = await executor.execute({
          runId: x.summary.id,
          stage,
          attempt,
          cwd,
          env: this.stepEnv(x, stage, attempt, root, secrets),
          // Stages run side by side: each attempt streams its output through a masker of its own.
          masker: masker.fork(),
          logDir: logRoot,
          signal: attemptCtl.signal,
          emit: (e) => this.emit(e),
          commit: x.summary.commit,
          artifacts: () => this.opts.store.getRun(x.summary.id)?.artifacts ?? [],
          deployer: this.opts.deployer,
          setWaiting: (message) => this.setStage(x, stage.name, { status: message ? 'waiting' : 'running', message }),
        });
      } finally {
        clearTimeout(timer);
        x.controller.signal.removeEventListener('abort', onRunAbort);
      }
      if (stage.report && reportFile && outcome.status !== 'cancelled') {
        await this.collectReport(x, stage, attempt, reportFile, reportBefore, cwd, root, masker);
      }
      if (outcome.status === 'succeeded' && stage.artifacts.length > 0) {
        const recorded = await this.recordArtifacts(x, stage, cwd, masker);
        if (!recorded.ok) outcome = { status: 'failed', message: recorded.error };
      }
      if (outcome.status === 'succeeded' || outcome.status === 'cancelled' || x.cancelled) break;
    }
    if (stage.verifies && (outcome.status === 'failed' || outcome.status === 'timed_out')) {
      const undone = await this.rollbackVerified(x, stage);
      outcome = { ...outcome, message: `${outcome.message ?? outcome.status}; ${undone}` };
    }
    this.setStage(x, stage.name, { status: outcome.status, finishedAt: new Date().toISOString(), message: outcome.message });
  }

  /**
   * A post-deploy check failed: rolls the environment of the deploy stage it verifies back to the
   * release that was live before this run deployed. Says what it did.
   */
  private async rollbackVerified(x: Execution, stage: StageConfig): Promise<string> {
    const deployStage = x.config.pipeline.stages.find((s) => s.name === stage.verifies);
    const environment = deployStage?.environment;
    if (!environment || !this.opts.deployer) return 'nothing to roll back';
    const d = this.opts.store.deployments(environment, 50).find((dep) => dep.runId === x.summary.id && dep.stage === deployStage.name && dep.status === 'succeeded');
    if (!d) return `${environment} was not deployed by this run: nothing to roll back`;
    if (d.fromRelease === null) return `${environment} had no release before this run's: nothing to roll back to`;
    const r = this.opts.deployer.rollback(environment, d.fromRelease, `conveyor (${stage.name} failed after deploy #${d.id})`);
    if (!r.ok) return `could not roll back ${environment}: ${r.error.error}`;
    const done = await r.value.done;
    return done.status === 'succeeded'
      ? `rolled ${environment} back to release ${d.fromRelease}`
      : `rolling ${environment} back to release ${d.fromRelease} ${done.status.replace('_', ' ')}: ${done.reason ?? ''}`;
  }

  /**
   * The test files a stage gets in $CONVEYOR_TESTS: the ones a save run chose, else every file
   * matching watch.tests (so the same command works for every trigger), else none. Paths are
   * joined with spaces, for `npx mocha $CONVEYOR_TESTS`; they are also in the file named by
   * $CONVEYOR_TESTS_FILE, one per line. A list longer than TESTS_VARIABLE_LIMIT is only in the
   * file, and $CONVEYOR_TESTS is `@` and the file's path (a response file, as many tools read).
   */
  private testsFor(x: Execution, root: string): { mode: string; files: string[] } {
    if (x.impact && x.impact.mode !== 'whole-stage') return { mode: x.impact.mode, files: x.impact.tests };
    if (x.impact) return { mode: 'whole-stage', files: [] };
    if (x.config.watch.tests.length === 0) return { mode: 'whole-stage', files: [] };
    x.allTests ??= globSync(x.config.watch.tests, { cwd: root, onlyFiles: true, ignore: ['**/node_modules/**'] }).sort();
    return { mode: 'all', files: x.allTests };
  }

  private stepEnv(x: Execution, stage: StageConfig, attempt: number, root: string, secrets: Map<string, string>): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.opts.env ?? process.env)) if (v !== undefined) env[k] = v;
    Object.assign(env, {
      CI: 'true',
      CONVEYOR: 'true',
      CONVEYOR_RUN_ID: String(x.summary.id),
      CONVEYOR_COMMIT: x.summary.commit ?? '',
      CONVEYOR_BRANCH: x.summary.branch ?? '',
      CONVEYOR_STAGE: stage.name,
      CONVEYOR_ATTEMPT: String(attempt),
      CONVEYOR_WORKSPACE: root,
    });
    if (env.FORCE_COLOR === undefined && env.NO_COLOR === undefined) env.FORCE_COLOR = '1';
    const tests = this.testsFor(x, root);
    if (!x.testsFile) {
      const file = path.join(this.workDir, `run-${x.summary.id}-tests.txt`);
      fs.mkdirSync(this.workDir, { recursive: true });
      fs.writeFileSync(file, tests.files.map((f) => `${f}\n`).join(''), { mode: 0o600 });
      x.testsFile = file;
    }
    const joined = tests.files.join(' ');
    env.CONVEYOR_TESTS = Buffer.byteLength(joined) <= TESTS_VARIABLE_LIMIT ? joined : `@${x.testsFile}`;
    env.CONVEYOR_TESTS_FILE = x.testsFile;
    env.CONVEYOR_TEST_MODE = tests.mode;
    Object.assign(env, stage.env);
    for (const [k, v] of secrets) env[k] = v;
    return env;
  }

  private async collectReport(
    x: Execution,
    stage: StageConfig,
    attempt: number,
    file: string,
    before: number | undefined,
    cwd: string,
    root: string,
    masker: Masker,
  ): Promise<void> {
    const base = { runId: x.summary.id, stage: stage.name, attempt, path: stage.report!.path };
    const after = mtimeOf(file);
    if (after === undefined) {
      this.emit({ type: 'report.unreadable', ...base, reason: `no report at ${stage.report!.path}: the test runner wrote none (did it crash before reporting?)` });
      return;
    }
    if (before !== undefined && after <= before) {
      this.emit({ type: 'report.unreadable', ...base, reason: `${stage.report!.path} was not rewritten by this attempt, so it is stale` });
      return;
    }
    const parsed = await readReport(
      stage.report!.format,
      file,
      { workspaceRoot: root, cwd },
      { messages: { chars: REPORT_TEXT_BUDGET, short: SHORT_TEST_FIELD, field: MAX_TEST_FIELD } },
    );
    if (!parsed.ok) {
      this.emit({ type: 'report.unreadable', ...base, reason: masker.mask(parsed.reason) });
      return;
    }
    const results = parsed.results.map((r) => this.cleanResult(r, root, masker));
    const note = parsed.shortened
      ? masker.mask(
          `the messages of ${parsed.shortened} of the ${results.length} results were cut to ${SHORT_TEST_FIELD} characters each, ` +
            `past ${REPORT_TEXT_BUDGET / (1024 * 1024)} MiB of the report's text (failures kept theirs first); the full report is ${file}`,
        )
      : undefined;
    const batches = resultBatches(results);
    let first = 0;
    for (const batch of batches) {
      // Several events: let the API and the other stages in between them.
      if (first > 0) await new Promise((resolve) => setImmediate(resolve));
      this.emit({
        type: 'tests.reported',
        runId: x.summary.id,
        stage: stage.name,
        attempt,
        passed: batch.filter((r) => r.status === 'passed').length,
        failed: batch.filter((r) => r.status === 'failed').length,
        skipped: batch.filter((r) => r.status === 'skipped').length,
        results: batch,
        ...(batches.length > 1 ? { first, total: results.length } : {}),
        ...(first === 0 && note ? { note } : {}),
      });
      first += batch.length;
    }
  }

  /** Masks, bounds, and maps locations inside a snapshot back to the user's files. */
  private cleanResult(r: TestResult, root: string, masker: Masker): TestResult {
    const text = (s: string | null) => (s === null ? null : masker.mask(s.length > MAX_TEST_FIELD ? s.slice(0, MAX_TEST_FIELD) + '…' : s));
    let location = r.location;
    if (location && root !== this.opts.workspace && isInside(location.file, root)) {
      location = { ...location, file: path.join(this.opts.workspace, path.relative(root, location.file)) };
    }
    return {
      ...r,
      suite: masker.mask(r.suite),
      name: masker.mask(r.name),
      message: text(r.message),
      expected: text(r.expected),
      actual: text(r.actual),
      stack: text(r.stack),
      location,
    };
  }

  /** Stores each artifact by content (sha256) under .conveyor/artifacts, so it outlives the snapshot. */
  private async recordArtifacts(x: Execution, stage: StageConfig, cwd: string, masker: Masker): Promise<Result<void, string>> {
    const store = path.join(this.opts.conveyorDir, 'artifacts', 'sha256');
    await fsp.mkdir(store, { recursive: true });
    for (const pattern of stage.artifacts) {
      const files = (await glob(pattern, { cwd, onlyFiles: true, dot: true, expandDirectories: true })).sort();
      if (files.length === 0) return err(`artifact "${pattern}" matched no file in ${stage.workdir}`);
      for (const rel of files) {
        const abs = path.join(cwd, rel);
        const hash = createHash('sha256');
        await pipeline(fs.createReadStream(abs), hash);
        const hex = hash.digest('hex');
        const target = path.join(store, hex);
        if (!fs.existsSync(target)) {
          const tmp = `${target}.${process.pid}.tmp`;
          await fsp.copyFile(abs, tmp);
          await fsp.rename(tmp, target);
        }
        const size = (await fsp.stat(abs)).size;
        // A file named after a secret keeps its name on disk; the run's record masks it.
        this.emit({ type: 'artifact.recorded', artifact: { runId: x.summary.id, stage: stage.name, kind: 'file', path: masker.mask(rel), digest: `sha256:${hex}`, size } });
      }
    }
    return ok(undefined);
  }

  private setStage(x: Execution, name: string, patch: Partial<StageInfo> & { status: StageStatus }): void {
    const next = { ...x.stages.get(name)!, ...patch };
    x.stages.set(name, next);
    this.emit({ type: 'stage.changed', stage: next });
  }

  private finish(x: Execution, status: RunStatus, reason: string | null): void {
    if (x.done.settled) return;
    x.summary = { ...x.summary, status, finishedAt: new Date().toISOString(), reason };
    this.emit({ type: 'run.finished', run: x.summary });
    this.byId.delete(x.summary.id);
    x.done.resolve();
  }
}

/**
 * The cells of a matrix stage as stages of their own: named `compat (node=18, db=pg)`, with
 * MATRIX_<AXIS> in their environment, and `$MATRIX_<AXIS>` in the report path replaced (cells run
 * side by side in one tree, so each may write its own report).
 */
export function matrixCellStages(stage: StageConfig): { stage: StageConfig; cell: MatrixCell }[] {
  return (stage.matrix?.cells ?? []).map(({ values, optional }) => {
    const vars = Object.fromEntries(Object.entries(values).map(([axis, v]) => [`MATRIX_${axis.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`, v]));
    const cell: MatrixCell = { of: stage.name, cell: values, optional };
    const { matrix: _matrix, ...rest } = stage;
    const report = stage.report && { ...stage.report, path: stage.report.path.replace(/\$\{?(MATRIX_[A-Z0-9_]+)\}?/g, (all, k: string) => vars[k] ?? all) };
    return { stage: { ...rest, name: `${stage.name} (${cellLabel(cell)})`, env: { ...stage.env, ...vars }, ...(report ? { report } : {}) }, cell };
  });
}

/** "node=18, db=pg". */
function cellLabel(cell: MatrixCell): string {
  return Object.entries(cell.cell)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

function invalidConfig(state: Extract<ConfigState, { valid: false }>): ApiError {
  const first = state.diagnostics.find((d) => d.severity === 'error') ?? state.diagnostics[0];
  const where = first ? `${path.basename(first.file)}:${first.range.start.line}:${first.range.start.column}: ${first.message}` : 'conveyor.yml is not valid';
  return {
    error: state.diagnostics.length > 1 ? `${where} (and ${state.diagnostics.length - 1} more)` : where,
    fix: first?.fix ?? 'run "conveyor validate" to see every problem',
    diagnostics: state.diagnostics,
  };
}

function mtimeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return !!rel && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Splits a report's results into the `tests.reported` events they go out in (at least one). */
function resultBatches(results: TestResult[]): TestResult[][] {
  const out: TestResult[][] = [[]];
  let bytes = 0;
  for (const r of results) {
    const size = JSON.stringify(r).length;
    const last = out[out.length - 1];
    if (last.length > 0 && (last.length >= RESULTS_PER_EVENT || bytes + size > RESULTS_EVENT_BYTES)) {
      out.push([r]);
      bytes = size;
    } else {
      last.push(r);
      bytes += size;
    }
  }
  return out;
}
