/**
 * The Timeline page: every event on one time axis, newest first, grouped by day; filtered by
 * environment, stage, kind and text; paged with "Load more"; new events arrive at the top. From
 * an incident (a failed deployment, a rollback, drift, an alert) one click shows what changed
 * before it.
 */
import '../shared/theme.css';
import './timeline.css';
import '../shared/elements';
import type { ConfigState, EnvironmentStatus, TimelineFamily, TimelineItem, TimelinePage } from '../../agent/protocol';
import { debounce, h, replace } from '../shared/dom';
import { startPage } from '../shared/page';
import { absoluteTime, dayLabel, localDay, relativeTime } from '../shared/time';
import { showChanges } from './changes';

type Field = HTMLElement & { value: string };
type Checkbox = HTMLElement & { checked: boolean };

const PAGE = 50;
const FAMILIES: TimelineFamily[] = ['run', 'test', 'deploy', 'drift', 'alert', 'commit', 'config', 'agent', 'log'];
/** Families shown at first: everything but log lines. */
const DEFAULT_FAMILIES = new Set<TimelineFamily>(['run', 'test', 'deploy', 'drift', 'alert', 'commit', 'config', 'agent']);

const ctx = startPage('timeline');
const { host, transport, main } = ctx;

const envSelect = h('vscode-single-select', { class: 'filter-environment', attrs: { 'aria-label': 'Environment' } }, h('vscode-option', { attrs: { value: '' } }, 'all environments')) as Field;
const stageSelect = h('vscode-single-select', { class: 'filter-stage', attrs: { 'aria-label': 'Stage' } }, h('vscode-option', { attrs: { value: '' } }, 'all stages')) as Field;
const textField = h('vscode-textfield', { class: 'filter-text', attrs: { placeholder: 'Filter by text', 'aria-label': 'Filter by text' } }) as Field;
const wanted = (host.param('kinds') ?? '').split(',').filter((k): k is TimelineFamily => (FAMILIES as string[]).includes(k));
const kindBoxes = new Map<TimelineFamily, Checkbox>(
  FAMILIES.map((f) => [f, h('vscode-checkbox', { class: 'filter-kind', attrs: { label: f, checked: wanted.length ? wanted.includes(f) : DEFAULT_FAMILIES.has(f) }, data: { kind: f } }) as Checkbox]),
);
const list = h('div', { class: 'timeline', attrs: { role: 'feed', 'aria-label': 'Events' } });
const more = h('vscode-button', { class: 'load-more', attrs: { secondary: true, hidden: true }, on: { click: () => void loadMore() } }, 'Load more');
const side = h('aside', { class: 'changes', attrs: { hidden: true, 'aria-label': 'What changed before' } });
main.append(
  h('div', { class: 'toolbar' }, envSelect, stageSelect, textField),
  h('div', { class: 'toolbar kinds', attrs: { role: 'group', 'aria-label': 'Kinds' } }, [...kindBoxes.values()]),
  h('div', { class: 'layout' }, h('div', { class: 'feed' }, list, more), side),
);

let items: TimelineItem[] = [];
let next: number | null = null;
let generation = 0;
let environment = host.param('environment') ?? '';
let stage = host.param('stage') ?? '';
if (host.param('text')) textField.setAttribute('value', host.param('text')!);

envSelect.addEventListener('change', () => {
  environment = envSelect.value;
  void reload();
});
stageSelect.addEventListener('change', () => {
  stage = stageSelect.value;
  void reload();
});
textField.addEventListener('input', debounce(() => void reload(), 300));
for (const box of kindBoxes.values()) box.addEventListener('change', () => void reload());

const refreshTop = debounce(() => void loadNewer(), 250);
ctx.events({ onEvents: () => refreshTop(), onReconnected: () => void loadNewer(), onReset: () => void reload() });
void fillFilters();
void reload();

/** The query of the current filters, with a cursor. */
function query(before?: number): string {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (before !== undefined) q.set('before', String(before));
  if (environment) q.set('environment', environment);
  if (stage) q.set('stage', stage);
  const kinds = [...kindBoxes].filter(([, b]) => b.checked).map(([k]) => k);
  if (kinds.length && kinds.length < FAMILIES.length) q.set('kinds', kinds.join(','));
  if (kinds.includes('log')) q.set('logs', '1');
  const text = (textField.value ?? '').trim();
  if (text) q.set('text', text);
  return q.toString();
}

async function fillFilters(): Promise<void> {
  try {
    const [envs, config] = await Promise.all([transport.json<EnvironmentStatus[]>('/api/environments'), transport.json<ConfigState>('/api/config')]);
    envSelect.append(...envs.map((e) => h('vscode-option', { attrs: { value: e.name, selected: e.name === environment } }, e.name)));
    const stages = config.valid ? config.config.pipeline.stages.map((s) => s.name) : [];
    stageSelect.append(...stages.map((s) => h('vscode-option', { attrs: { value: s, selected: s === stage } }, s)));
  } catch (e) {
    ctx.showError(e);
  }
}

/** The first page for the filters, from scratch. */
async function reload(): Promise<void> {
  const gen = ++generation;
  if (kindsNone()) {
    items = [];
    next = null;
    draw();
    return;
  }
  try {
    const page = await transport.json<TimelinePage>(`/api/timeline?${query()}`);
    if (gen !== generation) return;
    ctx.showError(null);
    items = page.items;
    next = page.next;
    draw();
    host.post({ type: 'rendered', page: 'timeline', summary: `${items.length} events` });
  } catch (e) {
    if (gen === generation) ctx.showError(e);
  }
}

/** The page after the last one shown. */
async function loadMore(): Promise<void> {
  if (next === null) return;
  const gen = generation;
  try {
    const page = await transport.json<TimelinePage>(`/api/timeline?${query(next)}`);
    if (gen !== generation) return;
    const seen = new Set(items.map((i) => i.seq));
    items = [...items, ...page.items.filter((i) => !seen.has(i.seq))];
    next = page.next;
    draw();
  } catch (e) {
    ctx.showError(e);
  }
}

/** New events for the filters, put on top (the agent computes titles and filters). */
async function loadNewer(): Promise<void> {
  if (kindsNone()) return;
  const gen = generation;
  try {
    const page = await transport.json<TimelinePage>(`/api/timeline?${query()}`);
    if (gen !== generation) return;
    const top = items[0]?.seq ?? 0;
    const fresh = page.items.filter((i) => i.seq > top);
    if (fresh.length === 0) return;
    // More new events than a page: the list starts over from them.
    if (fresh.length === page.items.length && items.length) {
      items = page.items;
      next = page.next;
    } else items = [...fresh, ...items];
    draw(new Set(fresh.map((i) => i.seq)));
  } catch (e) {
    ctx.showError(e);
  }
}

function kindsNone(): boolean {
  return ![...kindBoxes.values()].some((b) => b.checked);
}

/** Incidents: what "what changed before" is asked about. */
function incidentQuery(i: TimelineItem): string | null {
  const bad = i.level === 'error' || i.level === 'warning';
  const rollback = i.type === 'deployment.changed' && /^Rollback /.test(i.title);
  if (i.type === 'deployment.changed' && (bad || rollback) && i.links.deployment !== null) return `deployment=${i.links.deployment}`;
  if (i.family === 'drift' || i.family === 'alert' || (i.family === 'deploy' && bad)) return `seq=${i.seq}`;
  return null;
}

function draw(fresh: Set<number> = new Set()): void {
  const rows: HTMLElement[] = [];
  let day = '';
  for (const item of items) {
    const d = localDay(item.time);
    if (d !== day) {
      day = d;
      rows.push(h('h3', { class: 'day', data: { day: d } }, dayLabel(d)));
    }
    rows.push(row(item, fresh.has(item.seq)));
  }
  if (rows.length === 0) rows.push(h('p', { class: 'empty' }, kindsNone() ? 'Choose at least one kind of event.' : 'No event matches the filters.'));
  replace(list, rows);
  if (next === null) more.setAttribute('hidden', '');
  else more.removeAttribute('hidden');
}

function row(item: TimelineItem, fresh: boolean): HTMLElement {
  const incident = incidentQuery(item);
  const links = [
    item.links.runId !== null ? ctx.link('run', { run: String(item.links.runId) }, `run #${item.links.runId}`) : null,
    item.links.environment !== null
      ? h(
          'a',
          {
            class: 'env-link',
            attrs: { href: '#', title: `Only events of ${item.links.environment}` },
            on: {
              click: (e: Event) => {
                e.preventDefault();
                environment = item.links.environment!;
                envSelect.value = environment;
                void reload();
              },
            },
          },
          item.links.environment,
        )
      : null,
    incident
      ? h(
          'vscode-button',
          {
            class: 'what-changed',
            attrs: { secondary: true },
            on: {
              click: () => {
                side.removeAttribute('hidden');
                void showChanges(side, transport, incident);
              },
            },
          },
          'What changed before?',
        )
      : null,
  ].filter((x) => x !== null);
  return h(
    'article',
    { class: `item lvl-${item.level}${fresh ? ' fresh' : ''}`, data: { seq: item.seq, type: item.type, family: item.family ?? '' } },
    h('span', { class: 'dot', attrs: { 'aria-hidden': 'true' } }, '●'),
    h('time', { class: 'when muted', attrs: { datetime: item.time }, title: absoluteTime(item.time) }, relativeTime(item.time)),
    h('span', { class: 'family muted' }, item.family ?? item.type),
    h('span', { class: 'title' }, item.title),
    h('span', { class: 'links' }, links),
  );
}
