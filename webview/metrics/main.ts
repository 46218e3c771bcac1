/**
 * The Metrics page: the four DORA keys of a production environment (selectable) with their
 * bands, builds per day by status with the success rate, stage durations p50/p95 per week with
 * regression markers, and load test trends per stage. Windows: 7, 30 or 90 days; 4, 12 or 26
 * weeks for durations. It reloads when runs or deployments finish.
 */
import '../shared/theme.css';
import './metrics.css';
import '../shared/elements';
import type { BuildStats, DoraBand, DoraReport, DurationTrends, EnvironmentStatus, LoadTrend, SequencedEvent } from '../../agent/protocol';
import { debounce, h, replace } from '../shared/dom';
import { startPage } from '../shared/page';
import { count } from '../shared/status';
import { formatDuration } from '../shared/time';
import { buildsChart, deploymentsChart, destroyCharts, durationChart, loadChart } from './charts';

type Select = HTMLElement & { value: string };

const ctx = startPage('metrics');
const { host, transport, main } = ctx;

const envSelect = h('vscode-single-select', { class: 'env-select', attrs: { 'aria-label': 'Environment' } }) as Select;
const envLabel = h('label', null, 'Environment');
const daysSelect = options('days-select', 'Window', [['7', '7 days'], ['30', '30 days'], ['90', '90 days']], host.param('days') ?? '30');
const weeksSelect = options('weeks-select', 'Weeks of durations', [['4', '4 weeks'], ['12', '12 weeks'], ['26', '26 weeks']], host.param('weeks') ?? '12');
const dora = h('section', { class: 'dora', attrs: { 'aria-label': 'DORA metrics' } });
const builds = h('section', { class: 'builds' });
const durations = h('section', { class: 'durations' });
const loads = h('section', { class: 'loads' });
main.append(
  h('div', { class: 'toolbar' }, envLabel, envSelect, h('label', null, 'Window'), daysSelect, h('label', null, 'Durations'), weeksSelect),
  dora,
  builds,
  durations,
  loads,
);

let environment = host.param('environment') ?? '';
let generation = 0;

for (const select of [envSelect, daysSelect, weeksSelect]) {
  select.addEventListener('change', () => {
    environment = envSelect.value;
    void reload();
  });
}

const reloadSoon = debounce(() => void reload(), 800);
ctx.events({
  onEvents: (events) => {
    if (events.some(matters)) reloadSoon();
  },
  onReconnected: () => void reload(),
  onReset: () => void reload(),
});
void reload();

/** Events after which the figures change. */
function matters(e: SequencedEvent): boolean {
  return e.type === 'run.finished' || e.type === 'run.queued' || e.type === 'deployment.changed' || e.type === 'environment.health' || e.type === 'load.reported';
}

function options(cls: string, label: string, values: [string, string][], selected: string): Select {
  return h(
    'vscode-single-select',
    { class: cls, attrs: { 'aria-label': label } },
    values.map(([value, text]) => h('vscode-option', { attrs: { value, selected: value === selected } }, text)),
  ) as Select;
}

async function reload(): Promise<void> {
  const gen = ++generation;
  const days = daysSelect.value || '30';
  const weeks = weeksSelect.value || '12';
  try {
    const envs = await transport.json<EnvironmentStatus[]>('/api/environments');
    const doraQuery = new URLSearchParams({ days });
    if (environment) doraQuery.set('environment', environment);
    const [report, stats, trends] = await Promise.all([
      envs.length ? transport.json<DoraReport>(`/api/metrics/dora?${doraQuery}`).catch((e: unknown) => e as Error) : Promise.resolve(null),
      transport.json<BuildStats>(`/api/metrics/builds?days=${days}`),
      transport.json<DurationTrends>(`/api/metrics/durations?weeks=${weeks}`),
    ]);
    if (gen !== generation) return;
    ctx.showError(null);
    environment = report && !(report instanceof Error) ? report.environment : environment;
    fillEnvironments(envs.filter((e) => !e.preview).map((e) => e.name));
    renderDora(report, Number(days));
    renderBuilds(stats);
    renderDurations(trends);
    await renderLoads(gen, Number(days));
    host.post({ type: 'rendered', page: 'metrics', summary: report && !(report instanceof Error) ? `DORA ${report.environment}: ${count(report.deploymentFrequency.deployments, 'deployment')}; ${count(stats.runs, 'run')}` : count(stats.runs, 'run') });
  } catch (e) {
    if (gen === generation) ctx.showError(e);
  }
}

function fillEnvironments(names: string[]): void {
  envLabel.hidden = envSelect.hidden = names.length === 0;
  const current = [...envSelect.querySelectorAll('vscode-option')].map((o) => o.getAttribute('value'));
  if (current.join('\n') !== names.join('\n')) {
    replace(envSelect, names.map((n) => h('vscode-option', { attrs: { value: n } }, n)));
  }
  if (environment && envSelect.value !== environment) envSelect.value = environment;
}

const BAND_TEXT: Record<DoraBand, string> = { elite: 'Elite', high: 'High', medium: 'Medium', low: 'Low' };

function card(key: string, title: string, value: string, detail: string, band: DoraBand | null): HTMLElement {
  return h(
    'div',
    { class: 'card', data: { metric: key } },
    h('div', { class: 'card-title' }, title),
    h('div', { class: 'card-value' }, value),
    h('div', { class: 'card-detail muted' }, detail),
    h('vscode-badge', { class: `card-band badge-band-${band ?? 'none'}`, attrs: { variant: 'default' } }, band ? BAND_TEXT[band] : 'no data'),
  );
}

function renderDora(report: DoraReport | Error | null, days: number): void {
  destroyCharts(dora);
  if (report === null) {
    replace(dora, h('h2', null, 'DORA metrics'), h('p', { class: 'empty' }, 'conveyor.yml declares no environment: declare one (for example production) and deploy to it to measure delivery.'));
    return;
  }
  if (report instanceof Error) {
    replace(dora, h('h2', null, 'DORA metrics'), h('p', { class: 'empty' }, report.message));
    return;
  }
  const f = report.deploymentFrequency;
  const lt = report.leadTime;
  const cfr = report.changeFailureRate;
  const ttr = report.timeToRestore;
  const open = ttr.incidents.filter((i) => i.restoredAt === null).length;
  const daily = h('div', { class: 'chart chart-deployments', attrs: { 'aria-label': 'Deployments per day' } });
  replace(
    dora,
    h('h2', null, `DORA metrics · ${report.environment} · last ${days} days`),
    h(
      'div',
      { class: 'cards' },
      card('deploymentFrequency', 'Deployment frequency', f.perDay >= 1 ? `${f.perDay.toFixed(1)} / day` : `${f.perWeek.toFixed(1)} / week`, count(f.deployments, 'deployment'), f.band),
      card('leadTime', 'Lead time for changes', formatDuration(lt.medianMs), lt.samples ? `median of ${count(lt.samples, 'commit')} · p90 ${formatDuration(lt.p90Ms)}${lt.withoutCommitTime ? ` · ${lt.withoutCommitTime} without commit time` : ''}` : 'no deployed commit yet', lt.band),
      card('changeFailureRate', 'Change failure rate', cfr.rate === null ? '–' : `${Math.round(cfr.rate * 100)} %`, cfr.deployments ? `${cfr.failures} of ${count(cfr.deployments, 'deployment')}${cfr.failed.length ? ` (${cfr.failed.map((id) => `#${id}`).join(', ')})` : ''}` : 'no deployment yet', cfr.band),
      card('timeToRestore', 'Time to restore service', formatDuration(ttr.medianMs), ttr.incidents.length ? `${count(ttr.incidents.length, 'incident')}${open ? `, ${open} ongoing` : ''}` : 'no incident', ttr.band),
    ),
    daily,
  );
  deploymentsChart(daily, f.daily);
}

function renderBuilds(stats: BuildStats): void {
  destroyCharts(builds);
  const chart = h('div', { class: 'chart chart-builds', attrs: { 'aria-label': 'Builds per day by status' } });
  replace(
    builds,
    h('h2', null, 'Builds per day'),
    h('p', { class: 'builds-summary' }, `${count(stats.runs, 'run')} · ${stats.byStatus.succeeded} succeeded · ${stats.byStatus.failed} failed · success rate ${stats.successRate === null ? '–' : `${Math.round(stats.successRate * 100)} %`}`),
    chart,
  );
  buildsChart(chart, stats);
}

function renderDurations(trends: DurationTrends): void {
  destroyCharts(durations);
  const regressions = trends.stages.flatMap((s) => s.weeks.filter((w) => w.regression).map((w) => ({ stage: s.stage, week: w })));
  const charts = trends.stages.map((s) => {
    const el = h('div', { class: 'chart chart-duration', attrs: { 'aria-label': `Durations of ${s.stage}` } });
    return { s, el, box: h('div', { class: 'duration-stage', data: { stage: s.stage } }, h('h3', null, s.stage), el) };
  });
  replace(
    durations,
    h('h2', null, `Stage durations · p50 and p95 per week · regression: p95 more than ${trends.thresholdPct} % above the 4 weeks before`),
    regressions.length
      ? h(
          'ul',
          { class: 'regressions' },
          regressions.map((r) =>
            h('li', null, h('span', { class: 'st-failed' }, '▲ '), `${r.stage}: week of ${r.week.from.slice(0, 10)}, p95 ${formatDuration(r.week.p95Ms)} against ${formatDuration(r.week.baselineP95Ms)} before`),
          ),
        )
      : h('p', { class: 'muted' }, 'No regression in the window.'),
    charts.length ? h('div', { class: 'duration-grid' }, charts.map((c) => c.box)) : h('p', { class: 'empty' }, 'No stage has finished in the window yet.'),
  );
  for (const c of charts) durationChart(c.el, c.s);
}

/** Load results per stage (GET /api/metrics/load: each load stage attempt's figures), in the window. */
async function renderLoads(gen: number, days: number): Promise<void> {
  const trend = await transport.json<LoadTrend>('/api/metrics/load?limit=500');
  const since = Date.now() - days * 86_400_000;
  if (gen !== generation) return;
  destroyCharts(loads);
  const byStage = new Map<string, { time: string; p95: number; throughput: number; runId: number }[]>();
  for (const p of trend.points) {
    if (Date.parse(p.time) < since) continue;
    const list = byStage.get(p.stage) ?? [];
    list.push({ time: p.time, p95: p.p95, throughput: p.throughput, runId: p.runId });
    byStage.set(p.stage, list);
  }
  if (byStage.size === 0) {
    replace(loads);
    return;
  }
  const boxes = [...byStage].map(([stage, points]) => {
    points.sort((a, b) => a.time.localeCompare(b.time));
    const el = h('div', { class: 'chart chart-load' });
    return { el, points, box: h('div', { class: 'load-stage', data: { stage } }, h('h3', null, `${stage} · ${count(points.length, 'run')}`), el) };
  });
  replace(loads, h('h2', null, 'Load tests · p95 latency and throughput per run'), h('div', { class: 'duration-grid' }, boxes.map((b) => b.box)));
  for (const b of boxes) loadChart(b.el, b.points);
}
