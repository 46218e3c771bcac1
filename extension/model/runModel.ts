import * as vscode from 'vscode';
import type { ConfigState, RunDetail, RunSummary, SequencedEvent, StageInfo, StepInfo } from '../../agent/protocol';
import { FINISHED_RUN_STATUSES, FINISHED_STAGE_STATUSES } from '../../agent/protocol';

/** How many runs the model keeps (newest first). */
export const MAX_RUNS = 50;

interface Versioned<T> {
  value: T;
  /** Seq of the event that set it; 0 when it came from a REST answer. */
  seq: number;
}

/** One run as the model knows it. */
export interface RunState {
  readonly summary: RunSummary;
  /** Stages in pipeline order. */
  readonly stages: readonly StageInfo[];
  /** Steps ordered by stage (pipeline order), attempt, index. */
  readonly steps: readonly StepInfo[];
  /** True once every stage and step is known (from events since its start, or from GET /api/runs/:id). */
  readonly complete: boolean;
}

class RunEntry implements RunState {
  summaryV: Versioned<RunSummary>;
  stageMap = new Map<string, Versioned<StageInfo>>();
  stepMap = new Map<string, Versioned<StepInfo>>();
  complete: boolean;

  constructor(summary: RunSummary, seq: number, complete: boolean) {
    this.summaryV = { value: summary, seq };
    this.complete = complete;
  }

  get summary(): RunSummary {
    return this.summaryV.value;
  }

  get stages(): StageInfo[] {
    return [...this.stageMap.values()].map((v) => v.value);
  }

  get steps(): StepInfo[] {
    const order = new Map([...this.stageMap.keys()].map((name, i) => [name, i]));
    return [...this.stepMap.values()]
      .map((v) => v.value)
      .sort((a, b) => (order.get(a.stage) ?? 1e9) - (order.get(b.stage) ?? 1e9) || a.attempt - b.attempt || a.index - b.index);
  }
}

export function stepKey(s: { runId: number; stage: string; attempt: number; index?: number; step?: number }): string {
  return `${s.runId}\u0000${s.stage}\u0000${s.attempt}\u0000${s.index ?? s.step}`;
}

/** A chunk of a step's output, with its offset in the step's log when the model saw the step start. */
export interface LogChunk {
  seq: number;
  runId: number;
  stage: string;
  attempt: number;
  step: number;
  text: string;
  /** Characters of this step's log before this chunk; undefined if the step started before the model followed it. */
  offset: number | undefined;
}

export interface ModelChange {
  /** Runs whose summary, stages or steps changed. */
  runs: Set<number>;
  /** Runs were added or dropped: the list itself changed. */
  listChanged: boolean;
  configChanged: boolean;
}

/**
 * The UI state of one folder: a fold over the agent's events (runs, stages, steps, config),
 * seeded from REST answers. Every entity remembers the seq of the event that last set it, so a
 * REST answer requested at seq S never overwrites what an event after S said: the answer and
 * the event stream can race without the model going backwards or missing anything.
 */
export class RunModel implements vscode.Disposable {
  private readonly runs = new Map<number, RunEntry>();
  private configV: Versioned<ConfigState> | undefined;
  private _lastSeq = 0;
  /** Characters of each followed step's log seen so far. */
  private readonly logOffsets = new Map<string, number>();
  private readonly _onDidChange = new vscode.EventEmitter<ModelChange>();
  /** Fires once per applied batch or merge. */
  readonly onDidChange = this._onDidChange.event;
  private readonly _onDidLog = new vscode.EventEmitter<LogChunk>();
  readonly onDidLog = this._onDidLog.event;
  private readonly _onDidChangeStep = new vscode.EventEmitter<StepInfo>();
  readonly onDidChangeStep = this._onDidChangeStep.event;

  /** The last seq applied: resume the event stream after it. */
  get lastSeq(): number {
    return this._lastSeq;
  }

  get config(): ConfigState | undefined {
    return this.configV?.value;
  }

  /** Runs newest first. */
  list(): RunState[] {
    return [...this.runs.values()].sort((a, b) => b.summary.id - a.summary.id);
  }

  get(id: number): RunState | undefined {
    return this.runs.get(id);
  }

  /**
   * Moves lastSeq to `seq` without events: the state up to it came from REST answers (seeding),
   * and the event stream resumes after it.
   */
  fastForward(seq: number): void {
    if (seq > this._lastSeq) this._lastSeq = seq;
  }

  /** Forgets everything (the agent's history was reset). */
  reset(): void {
    const had = this.runs.size > 0 || this.configV !== undefined;
    this.runs.clear();
    this.configV = undefined;
    this.logOffsets.clear();
    this._lastSeq = 0;
    if (had) this._onDidChange.fire({ runs: new Set(), listChanged: true, configChanged: true });
  }

  /** Takes the run list of GET /api/runs, requested when the model was at `seqBefore`. */
  seedRuns(summaries: RunSummary[], seqBefore: number): void {
    const change: ModelChange = { runs: new Set(), listChanged: false, configChanged: false };
    for (const s of summaries) {
      const entry = this.runs.get(s.id);
      if (!entry) {
        this.runs.set(s.id, new RunEntry(s, 0, false));
        change.listChanged = true;
      } else if (entry.summaryV.seq <= seqBefore) {
        entry.summaryV = { value: s, seq: 0 };
        change.runs.add(s.id);
      }
    }
    this.prune(change);
    this.fire(change);
  }

  /** Takes GET /api/runs/:id, requested when the model was at `seqBefore`. */
  mergeDetail(detail: RunDetail, seqBefore: number): void {
    const { stages, steps, artifacts: _a, firstSeq: _f, ...summary } = detail;
    const change: ModelChange = { runs: new Set([detail.id]), listChanged: false, configChanged: false };
    let entry = this.runs.get(detail.id);
    if (!entry) {
      if (this.runs.size >= MAX_RUNS && detail.id < Math.min(...this.runs.keys())) return;
      entry = new RunEntry(summary, 0, true);
      this.runs.set(detail.id, entry);
      change.listChanged = true;
    } else if (entry.summaryV.seq <= seqBefore) {
      entry.summaryV = { value: summary, seq: 0 };
    }
    // The answer's stage order is the pipeline's; stages only events told of keep their place after.
    const stageMap = new Map<string, Versioned<StageInfo>>();
    for (const st of stages) {
      const mine = entry.stageMap.get(st.name);
      stageMap.set(st.name, mine && mine.seq > seqBefore ? mine : { value: st, seq: 0 });
    }
    for (const [name, v] of entry.stageMap) if (!stageMap.has(name)) stageMap.set(name, v);
    entry.stageMap = stageMap;
    for (const st of steps) {
      const key = stepKey(st);
      const mine = entry.stepMap.get(key);
      if (!mine || mine.seq <= seqBefore) entry.stepMap.set(key, { value: st, seq: 0 });
    }
    entry.complete = true;
    this.prune(change);
    this.fire(change);
  }

  /** Takes GET /api/config, requested when the model was at `seqBefore`. */
  seedConfig(state: ConfigState, seqBefore: number): void {
    if (this.configV && this.configV.seq > seqBefore) return;
    this.configV = { value: state, seq: 0 };
    this.fire({ runs: new Set(), listChanged: false, configChanged: true });
  }

  /** Applies a batch of events in order. Events at or below lastSeq are ignored. */
  apply(events: readonly SequencedEvent[]): void {
    const change: ModelChange = { runs: new Set(), listChanged: false, configChanged: false };
    // Log chunks and step changes, in event order, for terminals following a step.
    const stream: (LogChunk | StepInfo)[] = [];
    for (const e of events) {
      if (e.seq <= this._lastSeq) continue;
      this._lastSeq = e.seq;
      switch (e.type) {
        case 'run.queued':
        case 'run.started':
        case 'run.finished': {
          const entry = this.runs.get(e.run.id);
          if (entry) {
            entry.summaryV = { value: e.run, seq: e.seq };
            change.runs.add(e.run.id);
          } else if (this.runs.size < MAX_RUNS || e.run.id > Math.min(...this.runs.keys())) {
            // A run first heard of by run.queued is followed from its start: complete.
            this.runs.set(e.run.id, new RunEntry(e.run, e.seq, e.type === 'run.queued'));
            change.listChanged = true;
          }
          if (e.type === 'run.finished') this.forgetOffsets(e.run.id);
          break;
        }
        case 'stage.changed': {
          const entry = this.runs.get(e.stage.runId);
          if (!entry) break;
          entry.stageMap.set(e.stage.name, { value: e.stage, seq: e.seq });
          change.runs.add(e.stage.runId);
          break;
        }
        case 'step.changed': {
          const entry = this.runs.get(e.step.runId);
          const key = stepKey(e.step);
          if (e.step.status === 'running' && !this.logOffsets.has(key)) this.logOffsets.set(key, 0);
          if (!entry) break;
          entry.stepMap.set(key, { value: e.step, seq: e.seq });
          change.runs.add(e.step.runId);
          stream.push(e.step);
          break;
        }
        case 'log': {
          const key = stepKey(e);
          const offset = this.logOffsets.get(key);
          if (offset !== undefined) this.logOffsets.set(key, offset + e.text.length);
          stream.push({ seq: e.seq, runId: e.runId, stage: e.stage, attempt: e.attempt, step: e.step, text: e.text, offset });
          break;
        }
        case 'config.changed':
          this.configV = { value: e.state, seq: e.seq };
          change.configChanged = true;
          break;
        case 'agent.started':
        case 'tests.reported':
        case 'report.unreadable':
        case 'artifact.recorded':
          break;
        default:
          // Releases, deployments, approvals, health: not part of the runs model. Event types of
          // a newer agent land here too, and are skipped the same way.
          break;
      }
    }
    this.prune(change);
    // Listeners see the model after the whole batch, and logs and steps in event order.
    this.fire(change);
    for (const item of stream) {
      if ('text' in item) this._onDidLog.fire(item);
      else this._onDidChangeStep.fire(item);
    }
  }

  private forgetOffsets(runId: number): void {
    const prefix = `${runId}\u0000`;
    for (const key of this.logOffsets.keys()) if (key.startsWith(prefix)) this.logOffsets.delete(key);
  }

  private prune(change: ModelChange): void {
    if (this.runs.size <= MAX_RUNS) return;
    const ids = [...this.runs.keys()].sort((a, b) => b - a);
    for (const id of ids.slice(MAX_RUNS)) {
      this.runs.delete(id);
      this.forgetOffsets(id);
      change.runs.delete(id);
      change.listChanged = true;
    }
  }

  private fire(change: ModelChange): void {
    if (change.runs.size || change.listChanged || change.configChanged) this._onDidChange.fire(change);
  }

  /** True while the run can still change. */
  static isActive(run: RunSummary): boolean {
    return !FINISHED_RUN_STATUSES.includes(run.status);
  }

  static isStageFinished(stage: StageInfo): boolean {
    return FINISHED_STAGE_STATUSES.includes(stage.status);
  }

  dispose(): void {
    this._onDidChange.dispose();
    this._onDidLog.dispose();
    this._onDidChangeStep.dispose();
  }
}
