/**
 * The extension's fold over agent events and its log terminal, driven with events and REST
 * answers made up here, so that the races (an answer older than an event, chunks arriving while
 * a log is fetched) happen every time. Runs inside the extension host: the modules need `vscode`.
 */
import * as assert from 'node:assert/strict';
import type * as vscode from 'vscode';
import type { AgentEvent, RunDetail, RunSummary, SequencedEvent, StageInfo, StepInfo } from '../../../agent/protocol';
import type { AgentHttp } from '../../../extension/agent/agentApi';
import { LogTerminal } from '../../../extension/logs/logTerminal';
import { RunModel } from '../../../extension/model/runModel';
import type { FolderSession } from '../../../extension/session/folderSession';

const T = '2026-01-01T00:00:00.000Z';

function summary(id: number, status: RunSummary['status']): RunSummary {
  return { id, pipeline: 'p', trigger: 'manual', status, commit: 'a'.repeat(40), branch: 'main', title: 't', requestedStages: ['build'], queuedAt: T, startedAt: T, finishedAt: null, reason: null } as RunSummary;
}
function stage(runId: number, status: StageInfo['status']): StageInfo {
  return { runId, name: 'build', kind: 'command', status, needs: [], attempt: 1, startedAt: T, finishedAt: null, message: null } as StageInfo;
}
function step(runId: number, status: StepInfo['status'], index = 0): StepInfo {
  return { runId, stage: 'build', attempt: 1, index, command: `cmd ${index}`, status, exitCode: status === 'succeeded' ? 0 : null, startedAt: T, finishedAt: status === 'running' ? null : T };
}

/** Numbers events from `from`. */
function seq(from: number, events: AgentEvent[]): SequencedEvent[] {
  return events.map((e, i) => ({ ...e, seq: from + i, time: T }) as SequencedEvent);
}
function log(runId: number, text: string, index = 0): AgentEvent {
  return { type: 'log', runId, stage: 'build', attempt: 1, step: index, text };
}

function detail(run: RunSummary, stages: StageInfo[], steps: StepInfo[]): RunDetail {
  return { ...run, firstSeq: 1, stages, steps, artifacts: [] } as RunDetail;
}

const quietLog = { debug() {}, info() {}, warn() {}, error() {} } as unknown as vscode.LogOutputChannel;

/** A FolderSession as the log terminal sees it: the model, and an agent whose log answer is scripted. */
function fakeSession(model: RunModel, logs: () => Promise<string>): FolderSession {
  const http = { logs } as unknown as AgentHttp;
  return { model, requireApi: async () => http, ensureDetail: async () => undefined } as unknown as FolderSession;
}

describe('RunModel: a fold over events, seeded by REST answers', function () {
  it('applies each event once, in order; a resumed stream repeats nothing', function () {
    const m = new RunModel();
    const batch = seq(1, [{ type: 'run.queued', run: summary(1, 'queued') }, { type: 'stage.changed', stage: stage(1, 'pending') }]);
    m.apply(batch);
    m.apply(batch); // the same events again (a reconnect that overlapped): ignored
    assert.equal(m.lastSeq, 2);
    assert.deepEqual(m.list().map((r) => r.summary.id), [1]);
    m.apply(seq(3, [{ type: 'run.finished', run: { ...summary(1, 'succeeded'), finishedAt: T } }]));
    assert.equal(m.get(1)!.summary.status, 'succeeded');
    assert.equal(m.get(1)!.complete, true, 'followed from run.queued');
  });

  it('does not let a REST answer older than an event take the model back', function () {
    const m = new RunModel();
    m.seedRuns([summary(1, 'running')], 0);
    m.fastForward(10);
    const requestedAt = m.lastSeq; // GET /api/runs/1 leaves here...
    m.apply(seq(11, [{ type: 'stage.changed', stage: { ...stage(1, 'succeeded'), finishedAt: T } }, { type: 'run.finished', run: summary(1, 'succeeded') }]));
    // ...and its answer, made before those events, comes back after them.
    m.mergeDetail(detail(summary(1, 'running'), [stage(1, 'running')], [step(1, 'running')]), requestedAt);
    const run = m.get(1)!;
    assert.equal(run.summary.status, 'succeeded');
    assert.equal(run.stages[0].status, 'succeeded');
    assert.equal(run.steps[0].status, 'running', 'what no event spoke of comes from the answer');
    assert.equal(run.complete, true);
  });

  it('keeps the 50 newest runs', function () {
    const m = new RunModel();
    m.apply(seq(1, Array.from({ length: 60 }, (_, i) => ({ type: 'run.queued', run: summary(i + 1, 'queued') }) as AgentEvent)));
    const ids = m.list().map((r) => r.summary.id);
    assert.equal(ids.length, 50);
    assert.equal(ids[0], 60);
    assert.equal(ids[49], 11);
  });

  it('gives each log chunk its offset in the step, when it saw the step start', function () {
    const m = new RunModel();
    const chunks: (number | undefined)[] = [];
    m.onDidLog((c) => chunks.push(c.offset));
    m.apply(seq(1, [{ type: 'run.queued', run: summary(1, 'queued') }, log(1, 'early\n'), { type: 'step.changed', step: step(1, 'running') }, log(1, 'ab'), log(1, 'cde')]));
    assert.deepEqual(chunks, [undefined, 0, 2]);
  });
});

describe('LogTerminal: the log so far, then live chunks, each character once', function () {
  it('drops what the fetched log already holds of the chunks that arrived while it was fetched (known offsets)', async function () {
    const m = new RunModel();
    m.apply(seq(1, [{ type: 'run.queued', run: summary(1, 'running') }, { type: 'stage.changed', stage: stage(1, 'running') }, { type: 'step.changed', step: step(1, 'running') }, log(1, 'one\n')]));
    let n = 5;
    const session = fakeSession(m, async () => {
      // While the log is read, two more chunks arrive; the file already has the first of them.
      m.apply(seq(n, [log(1, 'two\n'), log(1, 'three\n')]));
      n += 2;
      return 'one\ntwo\n';
    });
    const pty = new LogTerminal({ session, runId: 1, stage: 'build' }, quietLog);
    pty.open();
    await pty.ready;
    m.apply(seq(n, [log(1, 'four\n'), { type: 'step.changed', step: step(1, 'succeeded') }]));
    assert.deepEqual(pty.transcript.match(/one|two|three|four/g), ['one', 'two', 'three', 'four'], JSON.stringify(pty.transcript));
    assert.match(pty.transcript, /✔ succeeded/);
    pty.dispose();
  });

  it('matches chunks against the fetched log when it did not see the step start (unknown offsets)', async function () {
    const m = new RunModel();
    // Seeded from REST mid-step: the model never saw the step's "running" event.
    m.mergeDetail(detail(summary(1, 'running'), [stage(1, 'running')], [step(1, 'running')]), 0);
    m.fastForward(100);
    let n = 101;
    const session = fakeSession(m, async () => {
      m.apply(seq(n, [log(1, 'line-2\n'), log(1, 'line-3\n')]));
      n += 2;
      return 'line-1\nline-2\n';
    });
    const pty = new LogTerminal({ session, runId: 1, stage: 'build' }, quietLog);
    pty.open();
    await pty.ready;
    m.apply(seq(n, [log(1, 'line-4\n'), { type: 'step.changed', step: step(1, 'succeeded') }]));
    assert.deepEqual(pty.transcript.match(/line-\d/g), ['line-1', 'line-2', 'line-3', 'line-4'], JSON.stringify(pty.transcript));
    pty.dispose();
  });

  it('follows the steps that start after it opened, each under its own header', async function () {
    const m = new RunModel();
    m.apply(seq(1, [{ type: 'run.queued', run: summary(1, 'running') }, { type: 'stage.changed', stage: stage(1, 'running') }, { type: 'step.changed', step: step(1, 'running', 0) }]));
    const session = fakeSession(m, async () => '');
    const pty = new LogTerminal({ session, runId: 1, stage: 'build' }, quietLog);
    pty.open();
    await pty.ready;
    m.apply(
      seq(4, [log(1, 'first\n', 0), { type: 'step.changed', step: step(1, 'succeeded', 0) }, { type: 'step.changed', step: step(1, 'running', 1) }, log(1, 'second\n', 1), { type: 'step.changed', step: step(1, 'succeeded', 1) }]),
    );
    const t = pty.transcript;
    assert.ok(t.indexOf('step 1: cmd 0') < t.indexOf('first') && t.indexOf('first') < t.indexOf('step 2: cmd 1') && t.indexOf('step 2: cmd 1') < t.indexOf('second'), JSON.stringify(t));
    assert.equal(t.match(/✔ succeeded/g)?.length, 2);
    assert.doesNotMatch(t.replace(/\r\n/g, ''), /\n/);
    pty.dispose();
  });
});
