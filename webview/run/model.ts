/**
 * What the Run page shows of one run, as a fold over the agent's events: the run's detail and
 * test results from the API, then every event of the run applied in order. Log text is kept only
 * for a run followed from its first event (the page fetches a finished run's logs instead).
 */
import type { DeploymentInfo, LoadSummary, RunDetail, ScanReport, SequencedEvent, Severity, StageInfo, StageTestResults, StepInfo } from '../../agent/protocol';
import { AnsiText } from '../shared/ansi';

/** A scan stage's report (scan.reported). */
export interface ScanResult {
  stage: string;
  attempt: number;
  failOn: Severity;
  ok: boolean;
  verdict: string;
  report: ScanReport;
}

/** A load stage's result (load.reported). */
export interface LoadResult {
  stage: string;
  attempt: number;
  environment: string;
  url: string;
  result: LoadSummary;
}

/** What an event changed, so the page re-renders only that. */
export interface Changes {
  summary: boolean;
  stages: boolean;
  /** Stages whose steps or log changed. */
  logs: Set<string>;
  tests: boolean;
  artifacts: boolean;
  deployments: boolean;
  scans: boolean;
  loads: boolean;
}

/** Nothing changed yet: what `apply` fills in. */
export function noChanges(): Changes {
  return { summary: false, stages: false, logs: new Set(), tests: false, artifacts: false, deployments: false, scans: false, loads: false };
}

/** The key of one step's log. */
export function stepKey(stage: string, attempt: number, step: number): string {
  return `${stage}\u0000${attempt}\u0000${step}`;
}

/** One run's state: its detail, tests, deployments, scans, load results and (when followed) logs. */
export class RunModel {
  readonly deployments = new Map<number, DeploymentInfo>();
  readonly scans: ScanResult[] = [];
  readonly loads: LoadResult[] = [];
  /** Step logs by stepKey, when followed from the run's start. */
  readonly logs = new Map<string, AnsiText>();

  constructor(
    public detail: RunDetail,
    public tests: StageTestResults[],
    /** Keep log text from `log` events (the run is followed from its first event). */
    readonly followsLogs: boolean,
  ) {}

  get id(): number {
    return this.detail.id;
  }

  stage(name: string): StageInfo | undefined {
    return this.detail.stages.find((s) => s.name === name);
  }

  /** The stage's steps, attempt by attempt, in order. */
  steps(stage: string): StepInfo[] {
    return this.detail.steps.filter((s) => s.stage === stage).sort((a, b) => a.attempt - b.attempt || a.index - b.index);
  }

  /** A newer detail and test list from the API (after a reconnect); folded state the API does not hold is kept. */
  refresh(detail: RunDetail, tests: StageTestResults[]): void {
    this.detail = detail;
    this.tests = tests;
  }

  /** Applies events in order; events of other runs are ignored. */
  apply(events: readonly SequencedEvent[], changes: Changes = noChanges()): Changes {
    const id = this.detail.id;
    for (const e of events) {
      switch (e.type) {
        case 'run.queued':
        case 'run.started':
        case 'run.finished':
          if (e.run.id !== id) break;
          this.detail = { ...this.detail, ...e.run };
          changes.summary = true;
          break;
        case 'stage.changed':
          if (e.stage.runId !== id) break;
          upsert(this.detail.stages, e.stage, (s) => s.name === e.stage.name);
          changes.stages = true;
          changes.logs.add(e.stage.name);
          break;
        case 'step.changed':
          if (e.step.runId !== id) break;
          upsert(this.detail.steps, e.step, (s) => s.stage === e.step.stage && s.attempt === e.step.attempt && s.index === e.step.index);
          changes.logs.add(e.step.stage);
          break;
        case 'log': {
          if (e.runId !== id || !this.followsLogs) break;
          const key = stepKey(e.stage, e.attempt, e.step);
          let text = this.logs.get(key);
          if (!text) this.logs.set(key, (text = new AnsiText()));
          text.append(e.text);
          changes.logs.add(e.stage);
          break;
        }
        case 'tests.reported': {
          if (e.runId !== id) break;
          const same = (t: StageTestResults) => t.stage === e.stage && t.attempt === e.attempt;
          // A big report comes in several events: the ones after the first append at `first`.
          const results = e.first ? [...(this.tests.find(same)?.results.slice(0, e.first) ?? []), ...e.results] : e.results;
          upsert(this.tests, { runId: id, stage: e.stage, attempt: e.attempt, results }, same);
          changes.tests = true;
          break;
        }
        case 'artifact.recorded': {
          const a = e.artifact;
          if (a.runId !== id) break;
          upsert(this.detail.artifacts, a, (x) => x.stage === a.stage && x.path === a.path && x.digest === a.digest);
          changes.artifacts = true;
          break;
        }
        case 'deployment.changed':
          if (e.deployment.runId !== id) break;
          this.deployments.set(e.deployment.id, e.deployment);
          changes.deployments = true;
          break;
        case 'scan.reported':
          if (e.runId !== id) break;
          upsert(this.scans, { stage: e.stage, attempt: e.attempt, failOn: e.failOn, ok: e.ok, verdict: e.verdict, report: e.report }, (s) => s.stage === e.stage && s.attempt === e.attempt);
          changes.scans = true;
          break;
        case 'load.reported':
          if (e.runId !== id) break;
          upsert(this.loads, { stage: e.stage, attempt: e.attempt, environment: e.environment, url: e.url, result: e.result }, (l) => l.stage === e.stage && l.attempt === e.attempt);
          changes.loads = true;
          break;
        default:
          break;
      }
    }
    return changes;
  }
}

function upsert<T>(list: T[], item: T, same: (x: T) => boolean): void {
  const i = list.findIndex(same);
  if (i === -1) list.push(item);
  else list[i] = item;
}
