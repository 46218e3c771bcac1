import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AgentEvent, RunStatus, RunSummary, StageInfo, StepInfo } from '../../../agent/protocol';
import type { EngineName } from '../../../agent/store/sqlite';

export const ENGINES: readonly EngineName[] = ['native', 'wasm'];

/** A temporary folder, removed by `dispose`. */
export class TempDir {
  readonly dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-store-')));

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Names of the files in the folder, sorted. */
  list(): string[] {
    return fs.readdirSync(this.dir).sort();
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export function run(id: number, status: RunStatus, over: Partial<RunSummary> = {}): RunSummary {
  const started = status === 'queued' ? null : '2026-01-01T10:00:01.000Z';
  const finished = ['queued', 'running'].includes(status) ? null : '2026-01-01T10:00:09.000Z';
  return {
    id,
    pipeline: 'app',
    trigger: 'manual',
    status,
    commit: 'abc1234',
    branch: 'main',
    title: `run ${id}`,
    requestedStages: ['build', 'test'],
    queuedAt: '2026-01-01T10:00:00.000Z',
    startedAt: started,
    finishedAt: finished,
    reason: null,
    impact: null,
    ...over,
  } as RunSummary;
}

export function stage(runId: number, name: string, status: StageInfo['status'], over: Partial<StageInfo> = {}): StageInfo {
  return {
    runId,
    name,
    kind: 'command',
    status,
    needs: name === 'test' ? ['build'] : [],
    attempt: status === 'pending' ? 0 : 1,
    startedAt: status === 'pending' ? null : '2026-01-01T10:00:02.000Z',
    finishedAt: ['pending', 'running'].includes(status) ? null : '2026-01-01T10:00:05.000Z',
    message: null,
    ...over,
  };
}

export function step(runId: number, stageName: string, index: number, status: StepInfo['status'], exitCode: number | null): StepInfo {
  return {
    runId,
    stage: stageName,
    attempt: 1,
    index,
    command: `echo ${stageName} ${index}`,
    status,
    exitCode,
    startedAt: '2026-01-01T10:00:02.000Z',
    finishedAt: status === 'running' ? null : '2026-01-01T10:00:03.000Z',
  };
}

/** The events of one complete run: every kind the store projects into a table. */
export function completeRun(id: number): AgentEvent[] {
  return [
    { type: 'run.queued', run: run(id, 'queued') },
    { type: 'run.started', run: run(id, 'running') },
    { type: 'stage.changed', stage: stage(id, 'build', 'running') },
    { type: 'stage.changed', stage: stage(id, 'test', 'pending') },
    { type: 'step.changed', step: step(id, 'build', 0, 'running', null) },
    { type: 'log', runId: id, stage: 'build', attempt: 1, step: 0, text: 'compiling\n' },
    { type: 'step.changed', step: step(id, 'build', 0, 'succeeded', 0) },
    { type: 'stage.changed', stage: stage(id, 'build', 'succeeded') },
    { type: 'artifact.recorded', artifact: { runId: id, stage: 'build', kind: 'file', path: 'dist/app.js', digest: 'sha256:00ff', size: 1234 } },
    { type: 'stage.changed', stage: stage(id, 'test', 'running') },
    {
      type: 'tests.reported',
      runId: id,
      stage: 'test',
      attempt: 1,
      passed: 1,
      failed: 1,
      skipped: 0,
      results: [
        { suite: 's', name: 'adds', status: 'passed', durationMs: 1.5, message: null, expected: null, actual: null, stack: null, location: null },
        {
          suite: 's',
          name: 'divides',
          status: 'failed',
          durationMs: 3,
          message: 'expected 2',
          expected: '2',
          actual: '3',
          stack: 'at divides',
          location: { file: '/w/test.js', line: 7, column: 3 },
        },
      ],
    },
    { type: 'stage.changed', stage: stage(id, 'test', 'failed', { message: '1 test failed' }) },
    { type: 'run.finished', run: run(id, 'failed', { reason: 'stage test failed' }) },
  ];
}

export function log(runId: number, text: string): AgentEvent {
  return { type: 'log', runId, stage: 'build', attempt: 1, step: 0, text };
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
