/**
 * The Run page (run.html?run=ID, or the newest run, followed as new runs start): the stage graph,
 * each stage's steps and log with search, test results with links to their source, artifacts,
 * the run's deployments, scan findings and load results. It follows the run live.
 */
import '../shared/theme.css';
import './run.css';
import '../shared/elements';
import type { RunDetail, RunSummary, SequencedEvent, StageTestResults } from '../../agent/protocol';
import { FINISHED_RUN_STATUSES } from '../../agent/protocol';
import { ansiLines, type Line } from '../shared/ansi';
import { h, perFrame, replace } from '../shared/dom';
import type { EventClient } from '../shared/events';
import { startPage } from '../shared/page';
import { statusClass, statusWord } from '../shared/status';
import { durationBetween } from '../shared/time';
import { renderDag } from './dagView';
import { LogView } from './logView';
import { noChanges, RunModel, stepKey, type Changes } from './model';
import { renderArtifacts, renderDeployments, renderLoads, renderScans, renderTests, when } from './sections';

/** Most events read back from the history of a finished run (its deployments, scans and load results). */
const HISTORY_LIMIT = 100_000;

const ctx = startPage('run');
const { host, transport, main } = ctx;
const requested = host.param('run');
/** Without ?run=, the page shows the newest run and moves to each new one. */
const followNewest = requested === null || requested === '';

const header = h('div', { class: 'run-header' });
const graph = h('div', { class: 'graph', attrs: { 'aria-label': 'Stage graph' } });
const stageHead = h('div', { class: 'stage-head' });
const steps = h('ol', { class: 'steps' });
const logView = new LogView();
const panels = {
  tests: h('div', { class: 'panel-tests' }),
  artifacts: h('div', { class: 'panel-artifacts' }),
  deployments: h('div', { class: 'panel-deployments' }),
  scans: h('div', { class: 'panel-scans' }),
  loads: h('div', { class: 'panel-loads' }),
};
const tabHeaders = {
  logs: h('vscode-tab-header', { attrs: { slot: 'header' }, data: { tab: 'logs' } }, 'Logs'),
  tests: h('vscode-tab-header', { attrs: { slot: 'header' }, data: { tab: 'tests' } }, 'Tests'),
  artifacts: h('vscode-tab-header', { attrs: { slot: 'header' }, data: { tab: 'artifacts' } }, 'Artifacts'),
  deployments: h('vscode-tab-header', { attrs: { slot: 'header' }, data: { tab: 'deployments' } }, 'Deploys'),
  scans: h('vscode-tab-header', { attrs: { slot: 'header' }, data: { tab: 'scans' } }, 'Scan'),
  loads: h('vscode-tab-header', { attrs: { slot: 'header' }, data: { tab: 'loads' } }, 'Load'),
};
const tabs = h(
  'vscode-tabs',
  { class: 'tabs', attrs: { 'selected-index': 0, panel: true } },
  tabHeaders.logs,
  h('vscode-tab-panel', null, h('div', { class: 'logs-pane' }, stageHead, steps, logView.el)),
  tabHeaders.tests,
  h('vscode-tab-panel', null, panels.tests),
  tabHeaders.artifacts,
  h('vscode-tab-panel', null, panels.artifacts),
  tabHeaders.deployments,
  h('vscode-tab-panel', null, panels.deployments),
  tabHeaders.scans,
  h('vscode-tab-panel', null, panels.scans),
  tabHeaders.loads,
  h('vscode-tab-panel', null, panels.loads),
);
const loading = h('vscode-progress-ring', { class: 'loading', attrs: { 'aria-label': 'Loading the run' } });
main.append(loading);

let model: RunModel | undefined;
let client: EventClient | undefined;
let selected: string | null = null;
/** Fetched logs of a finished run's stages. */
const fetchedLogs = new Map<string, Line[]>();
let pending: Changes = noChanges();
let generation = 0;

const flush = perFrame(() => {
  const c = pending;
  pending = noChanges();
  if (model) render(model, c);
});

void load(followNewest ? undefined : Number(requested));

/** Shows a run (the newest when no id is given) and follows it. */
async function load(id: number | undefined): Promise<void> {
  const gen = ++generation;
  client?.stop();
  client = undefined;
  try {
    const runId = id ?? (await transport.json<RunSummary[]>('/api/runs?limit=1'))[0]?.id;
    if (gen !== generation) return;
    if (runId === undefined) {
      model = undefined;
      replace(main, h('h1', null, 'No runs yet'), h('p', { class: 'empty' }, 'Run the pipeline (conveyor run, or Run Pipeline in the editor): this page shows the run as it starts.'));
      client = ctx.events({ onEvents: (events) => onEvents(events, gen) });
      return;
    }
    if (!Number.isSafeInteger(runId) || runId < 1) throw new Error(`"${requested}" is not a run number: run.html?run=42 shows run #42`);
    const [detail, tests] = await Promise.all([transport.json<RunDetail>(`/api/runs/${runId}`), transport.json<StageTestResults[]>(`/api/runs/${runId}/tests`)]);
    if (gen !== generation) return;
    const active = !FINISHED_RUN_STATUSES.includes(detail.status);
    const m = new RunModel(detail, tests, active);
    if (!active) await readHistory(m);
    if (gen !== generation) return;
    model = m;
    fetchedLogs.clear();
    if (!selected || !m.stage(selected)) selected = firstInteresting(m);
    replace(main, header, graph, tabs);
    ctx.showError(null);
    render(m, { ...noChanges(), summary: true, stages: true, tests: true, artifacts: true, deployments: true, scans: true, loads: true, logs: new Set(selected ? [selected] : []) });
    // An active run is followed from its first event: every stage change and log line, in order.
    client = ctx.events({
      since: active ? detail.firstSeq - 1 : undefined,
      onEvents: (events) => onEvents(events, gen),
      onReconnected: () => void refresh(gen),
      onReset: () => void load(followNewest ? undefined : runId),
    });
    host.post({ type: 'title', title: `Run #${runId}` });
    document.title = `Conveyor · Run #${runId}`;
    host.post({ type: 'rendered', page: 'run', summary: `Run #${runId} ${detail.status}` });
  } catch (e) {
    if (gen !== generation) return;
    loading.remove();
    ctx.showError(e);
    // Keep listening: the agent may come back, or the run may start.
    client ??= ctx.events({ onEvents: () => undefined, onReconnected: () => void load(id) });
  }
}

/** A finished run's deployments, scans and load results, from its events (log lines are skipped). */
async function readHistory(m: RunModel): Promise<void> {
  let since = m.detail.firstSeq - 1;
  for (let read = 0; read < HISTORY_LIMIT; ) {
    const batch = await transport.json<SequencedEvent[]>(`/api/events?since=${since}&limit=2000`);
    if (batch.length === 0) return;
    read += batch.length;
    since = batch[batch.length - 1].seq;
    m.apply(batch.filter((e) => e.type === 'deployment.changed' || e.type === 'scan.reported' || e.type === 'load.reported'));
    if (batch.some((e) => e.type === 'run.finished' && e.run.id === m.id)) return;
  }
}

/** After a reconnect: the detail and tests again (the stream itself resumed where it was). */
async function refresh(gen: number): Promise<void> {
  const m = model;
  if (!m) return void load(followNewest ? undefined : Number(requested));
  try {
    const [detail, tests] = await Promise.all([transport.json<RunDetail>(`/api/runs/${m.id}`), transport.json<StageTestResults[]>(`/api/runs/${m.id}/tests`)]);
    if (gen !== generation) return;
    m.refresh(detail, tests);
    fetchedLogs.clear();
    pending = { ...noChanges(), summary: true, stages: true, tests: true, artifacts: true, logs: new Set(selected ? [selected] : []) };
    flush();
    host.post({ type: 'rendered', page: 'run', summary: `Run #${m.id} ${detail.status}` });
  } catch (e) {
    ctx.showError(e);
  }
}

function onEvents(events: SequencedEvent[], gen: number): void {
  if (gen !== generation) return;
  if (followNewest) {
    const newer = events.filter((e): e is Extract<SequencedEvent, { type: 'run.queued' }> => e.type === 'run.queued').pop();
    if (newer && (!model || newer.run.id > model.id)) {
      selected = null;
      void load(newer.run.id);
      return;
    }
  }
  if (!model) return;
  model.apply(events, pending);
  flush();
}

/** The stage to show first: a failed one, else a running one, else the last one. */
function firstInteresting(m: RunModel): string | null {
  const stages = m.detail.stages;
  return (stages.find((s) => s.status === 'failed' || s.status === 'timed_out') ?? stages.find((s) => s.status === 'running') ?? stages[stages.length - 1])?.name ?? null;
}

function select(stage: string): void {
  selected = stage;
  (tabs as HTMLElement & { selectedIndex: number }).selectedIndex = 0;
  if (model) render(model, { ...noChanges(), stages: true, logs: new Set([stage]) });
}

function render(m: RunModel, c: Changes): void {
  loading.remove();
  if (c.summary || c.stages) renderHeader(m);
  if (c.stages) replace(graph, renderDag(m.detail.stages, selected, select));
  if (selected && (c.logs.has(selected) || c.stages)) renderStage(m, selected);
  if (c.tests) {
    replace(panels.tests, renderTests(host, m.tests));
    const failed = m.tests.reduce((n, t) => n + t.results.filter((r) => r.status === 'failed').length, 0);
    const total = m.tests.reduce((n, t) => n + t.results.length, 0);
    tabHeaders.tests.textContent = total ? `Tests (${failed ? `${failed} failed` : total})` : 'Tests';
  }
  if (c.artifacts) {
    replace(panels.artifacts, renderArtifacts(m.detail.artifacts));
    tabHeaders.artifacts.textContent = `Artifacts (${m.detail.artifacts.length})`;
  }
  if (c.deployments) {
    replace(panels.deployments, renderDeployments([...m.deployments.values()]));
    tabHeaders.deployments.textContent = `Deploys (${m.deployments.size})`;
  }
  if (c.scans) replace(panels.scans, renderScans(m.scans));
  if (c.loads) replace(panels.loads, renderLoads(m.loads));
}

function renderHeader(m: RunModel): void {
  const d = m.detail;
  const took = durationBetween(d.startedAt, d.finishedAt);
  const nav = h(
    'span',
    { class: 'run-nav' },
    d.id > 1 ? ctx.link('run', { run: String(d.id - 1) }, `← #${d.id - 1}`) : null,
    ' ',
    followNewest ? h('span', { class: 'muted' }, 'following new runs') : ctx.link('run', {}, 'newest run'),
  );
  replace(
    header,
    h('h1', null, `Run #${d.id} `, h('span', { class: `${statusClass(d.status)} run-status` }, statusWord(d.status))),
    h(
      'div',
      { class: 'run-meta muted' },
      [
        d.title ? h('span', { class: 'run-title' }, d.title) : null,
        d.commit ? h('span', { class: 'mono', title: d.commit }, d.commit.slice(0, 7)) : h('span', null, 'working tree'),
        d.branch ? h('span', null, d.branch) : null,
        h('span', null, d.trigger),
        h('span', null, 'queued ', when(d.queuedAt)),
        took ? h('span', null, `took ${took}`) : null,
        d.reason ? h('span', null, d.reason) : null,
      ]
        .filter(Boolean)
        .flatMap((x, i) => (i ? [' · ', x] : [x])),
    ),
    nav,
  );
}

function renderStage(m: RunModel, name: string): void {
  const s = m.stage(name);
  if (!s) return;
  replace(
    stageHead,
    h('h2', null, `${s.name} `, h('span', { class: statusClass(s.status) }, statusWord(s.status)), s.attempt > 1 ? h('span', { class: 'muted' }, ` · attempt ${s.attempt}`) : null),
    s.message ? h('p', { class: 'stage-message' }, s.message) : null,
  );
  const list = m.steps(name);
  replace(
    steps,
    list.map((st) =>
      h('li', { class: 'step' }, h('span', { class: statusClass(st.status) }, statusWord(st.status)), ' ', h('span', { class: 'mono' }, st.command.split('\n')[0]), st.exitCode !== null && st.exitCode !== 0 ? h('span', { class: 'muted' }, ` (exit ${st.exitCode})`) : null, st.attempt > 1 ? h('span', { class: 'muted' }, ` · attempt ${st.attempt}`) : null),
    ),
  );
  if (m.followsLogs) {
    logView.setLines(followedLines(m, name), s.status === 'pending' ? 'not started yet' : 'no output yet');
    return;
  }
  const fetched = fetchedLogs.get(name);
  if (fetched) {
    logView.setLines(fetched, 'no output');
    return;
  }
  logView.setLines([], 'loading…');
  transport
    .text(`/api/runs/${m.id}/logs?stage=${encodeURIComponent(name)}`)
    .then((text) => {
      const lines = ansiLines(text).map((line) => (line.length === 1 && line[0].text.startsWith('── ') ? [{ ...line[0], classes: 'log-header' }] : line));
      fetchedLogs.set(name, lines);
      if (model === m && selected === name) logView.setLines(lines, 'no output');
    })
    .catch((e: unknown) => ctx.showError(e));
}

/** A followed stage's log: each step's lines under a header, as the agent's /logs route writes them. */
function followedLines(m: RunModel, stage: string): Line[] {
  const out: Line[] = [];
  const seen = new Set<string>();
  for (const st of m.steps(stage)) {
    if (st.status === 'skipped') continue;
    const key = stepKey(stage, st.attempt, st.index);
    seen.add(key);
    out.push([{ text: `── ${stage} · attempt ${st.attempt} · step ${st.index + 1}: ${st.command.split('\n')[0]}`, classes: 'log-header' }]);
    out.push(...(m.logs.get(key)?.completeLines ?? []));
  }
  // Output of a stage kind that writes without steps (deploys, probes).
  for (const [key, text] of m.logs) {
    if (!seen.has(key) && key.startsWith(`${stage}\u0000`)) out.push(...text.completeLines);
  }
  return out;
}
