/**
 * The Metrics page's charts, drawn with uPlot in the theme's chart colours: builds per day
 * stacked by status with the success rate, duration p50/p95 per week with regression markers,
 * load p95 and throughput per run, and deployments per day.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { BuildStats, RunStatus, StageDurationTrend } from '../../agent/protocol';
import { formatDuration } from '../shared/time';

/** A theme colour (a CSS variable), read when a chart is drawn. */
export function colour(variable: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(variable).trim() || fallback;
}

function palette() {
  return {
    fg: colour('--vscode-charts-foreground', colour('--vscode-foreground', '#1f2328')),
    grid: colour('--vscode-charts-lines', 'rgba(128,128,128,0.25)'),
    green: colour('--vscode-charts-green', '#1a7f37'),
    red: colour('--vscode-charts-red', '#cf222e'),
    yellow: colour('--vscode-charts-yellow', '#bf8700'),
    orange: colour('--vscode-charts-orange', '#bc4c00'),
    blue: colour('--vscode-charts-blue', '#0969da'),
    purple: colour('--vscode-charts-purple', '#8250df'),
    muted: colour('--vscode-descriptionForeground', '#8c959f'),
  };
}

const charts = new Set<{ plot: uPlot; el: HTMLElement }>();
let observer: ResizeObserver | undefined;

/** A chart in `el`, as wide as it is; it follows the element's width. Drop it with `destroyCharts`. */
function plot(el: HTMLElement, opts: Omit<uPlot.Options, 'width'>, data: uPlot.AlignedData): uPlot {
  const p = palette();
  const axis = (a: uPlot.Axis = {}): uPlot.Axis => ({ stroke: p.fg, grid: { stroke: p.grid, width: 1 }, ticks: { stroke: p.grid, width: 1 }, ...a });
  const full: uPlot.Options = {
    ...opts,
    width: Math.max(240, el.clientWidth || 600),
    axes: (opts.axes ?? [{}, {}]).map(axis),
  };
  const u = new uPlot(full, data, el);
  charts.add({ plot: u, el });
  observer ??= new ResizeObserver(() => {
    for (const c of charts) {
      const w = Math.max(240, c.el.clientWidth);
      if (Math.abs(w - c.plot.width) > 2) c.plot.setSize({ width: w, height: c.plot.height });
    }
  });
  observer.observe(el);
  return u;
}

/** Destroys the charts inside `root` (before it is redrawn). */
export function destroyCharts(root: HTMLElement): void {
  for (const c of [...charts]) {
    if (!root.contains(c.el)) continue;
    c.plot.destroy();
    observer?.unobserve(c.el);
    charts.delete(c);
  }
}

const STACK: RunStatus[] = ['succeeded', 'failed', 'cancelled', 'interrupted', 'running', 'queued'];

function day(date: string): number {
  return Date.parse(`${date}T00:00:00Z`) / 1000;
}

/** Runs per day stacked by status (each bar segment is a status), and the success rate in %. */
export function buildsChart(el: HTMLElement, stats: BuildStats): uPlot {
  const p = palette();
  const colours: Record<RunStatus, string> = { succeeded: p.green, failed: p.red, cancelled: p.muted, interrupted: p.orange, running: p.blue, queued: p.yellow };
  const xs = stats.days.map((d) => day(d.date));
  const used = STACK.filter((s) => stats.byStatus[s] > 0);
  const shown = used.length ? used : (['succeeded'] as RunStatus[]);
  // Cumulative sums, drawn top first so each status shows as its own band of the bar.
  const cumulative = shown.map((_, k) => stats.days.map((d) => shown.slice(0, k + 1).reduce((n, s) => n + d.byStatus[s], 0)));
  const bars = uPlot.paths.bars!({ size: [0.7, 48], align: 0 });
  const series: uPlot.Series[] = [{ label: 'day', value: (_u, v) => (v === null ? '' : new Date(v * 1000).toISOString().slice(0, 10)) }];
  const data: (number | null)[][] = [xs];
  for (let k = shown.length - 1; k >= 0; k--) {
    const status = shown[k];
    series.push({
      label: status,
      fill: colours[status],
      stroke: colours[status],
      paths: bars,
      points: { show: false },
      value: (_u, _v, _si, i) => (i === null || i === undefined ? '' : String(stats.days[i]?.byStatus[status] ?? '')),
    });
    data.push(cumulative[k]);
  }
  series.push({ label: 'success rate', scale: '%', stroke: p.fg, width: 1.5, dash: [4, 3], points: { show: true, size: 4 }, value: (_u, v) => (v === null ? '–' : `${v.toFixed(0)} %`) });
  data.push(stats.days.map((d) => (d.successRate === null ? null : d.successRate * 100)));
  return plot(
    el,
    {
      height: 220,
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] }, '%': { range: [0, 100] } },
      series,
      axes: [{}, { label: 'runs' }, { scale: '%', side: 1, label: 'success %', grid: { show: false } }],
    },
    data as uPlot.AlignedData,
  );
}

/** One stage's p50 and p95 per week, with a marker on each week flagged as a regression. */
export function durationChart(el: HTMLElement, trend: StageDurationTrend): uPlot {
  const p = palette();
  const xs = trend.weeks.map((w) => Date.parse(w.from) / 1000);
  const fmt = (_u: uPlot, v: number | null) => (v === null ? '–' : formatDuration(v));
  return plot(
    el,
    {
      height: 160,
      scales: { x: { time: true } },
      series: [
        { label: 'week of', value: (_u, v) => (v === null ? '' : new Date(v * 1000).toISOString().slice(0, 10)) },
        { label: 'p50', stroke: p.blue, width: 1.5, value: fmt, spanGaps: true },
        { label: 'p95', stroke: p.purple, width: 1.5, value: fmt, spanGaps: true },
        { label: 'regression', stroke: p.red, fill: p.red, paths: () => null, points: { show: true, size: 10, fill: p.red, stroke: p.red }, value: fmt },
      ],
      axes: [{}, { values: (_u, ticks) => ticks.map((t) => formatDuration(t)), size: 64 }],
    },
    [xs, trend.weeks.map((w) => w.p50Ms), trend.weeks.map((w) => w.p95Ms), trend.weeks.map((w) => (w.regression ? w.p95Ms : null))],
  );
}

/** A load stage's p95 latency (ms) and throughput (requests/s) per run, over time. */
export function loadChart(el: HTMLElement, points: { time: string; p95: number; throughput: number }[]): uPlot {
  const p = palette();
  return plot(
    el,
    {
      height: 160,
      scales: { x: { time: true } },
      series: [
        {},
        { label: 'p95', stroke: p.purple, width: 1.5, points: { show: true, size: 5 }, value: (_u, v) => (v === null ? '–' : `${v.toFixed(1)} ms`) },
        { label: 'throughput', scale: 'rps', stroke: p.green, width: 1.5, points: { show: true, size: 5 }, value: (_u, v) => (v === null ? '–' : `${v.toFixed(1)}/s`) },
      ],
      axes: [{}, { label: 'p95 ms' }, { scale: 'rps', side: 1, label: 'req/s', grid: { show: false } }],
    },
    [points.map((x) => Date.parse(x.time) / 1000), points.map((x) => x.p95), points.map((x) => x.throughput)],
  );
}

/** Deployments per day, as bars. */
export function deploymentsChart(el: HTMLElement, daily: { date: string; deployments: number }[]): uPlot {
  const p = palette();
  return plot(
    el,
    {
      height: 120,
      legend: { show: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      series: [{}, { label: 'deployments', fill: p.blue, stroke: p.blue, paths: uPlot.paths.bars!({ size: [0.7, 24] }), points: { show: false } }],
      axes: [{}, { size: 32 }],
    },
    [daily.map((d) => day(d.date)), daily.map((d) => d.deployments)],
  );
}
