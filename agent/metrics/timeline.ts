/**
 * The timeline: every event on one axis, newest first, in bounded pages, filtered by
 * environment, stage, kind and text.
 *
 * Each event type is read through the (type, seq) index, newest first, and the streams are
 * merged, so a page costs about `limit` rows per type whatever the size of the history. With an
 * environment the (environment, seq) index is read instead. Stage and text filters look into
 * the events: a page with them reads a bounded span of sequence numbers straight from the table
 * (or the environment's index) and says where to go on from.
 */
import type { SequencedEvent, TimelineFamily, TimelineItem, TimelinePage } from '../protocol';
import type { SqliteDatabase } from '../store/sqlite';
import { InputError } from './stats';
import { describeEvent } from './titles';

/**
 * The families of event types: a pattern ending in "." takes every type it begins, another one
 * that type only. The `commit` family also takes the runs that a new commit queued.
 */
export const FAMILIES: Readonly<Record<TimelineFamily, readonly string[]>> = {
  run: ['run.', 'stage.', 'step.', 'artifact.'],
  test: ['tests.', 'report.', 'load.', 'scan.'],
  deploy: ['release.', 'deployment.', 'approval.', 'environment.', 'preview.'],
  drift: ['drift.', 'sync.'],
  alert: ['alert.'],
  commit: ['commit.', 'state.committed', 'image.update'],
  config: ['config.'],
  agent: ['agent.'],
  log: ['log'],
};

/** Rows of a type that a family takes only in part: run.queued, for `commit`, when a commit queued it. */
const PARTIAL: Partial<Record<TimelineFamily, Record<string, string>>> = {
  commit: { 'run.queued': `json_extract(body, '$.run.trigger') = 'commit'` },
};

/**
 * Where an event type keeps the name of its stage (null: it has none); other types keep it in
 * `stage`, as log lines and test reports do.
 */
const STAGE_PATHS: Readonly<Record<string, string | null>> = {
  'stage.changed': '$.stage.name',
  'step.changed': '$.step.stage',
  'artifact.recorded': '$.artifact.stage',
  'deployment.changed': '$.deployment.stage',
  'approval.changed': '$.approval.stage',
  'alert.changed': '$.alert.stage',
  'agent.started': null,
  'config.changed': null,
  'run.queued': null,
  'run.started': null,
  'run.finished': null,
  'release.created': null,
  'deployment.progress': null,
  'environment.health': null,
  'preview.created': null,
  'preview.destroyed': null,
};

/** The default page size and the largest allowed. */
export const TIMELINE_LIMIT = { default: 50, max: 500 } as const;
/** How many sequence numbers a page with a stage or text filter looks at, at most. */
export const TIMELINE_SCAN_SPAN = 50_000;

/** A timeline query after its checks. */
export interface TimelineFilter {
  before: number;
  limit: number;
  environment?: string;
  stage?: string;
  kinds?: string[];
  text?: string;
  includeLogs: boolean;
}

/** A row of the events table, as the timeline reads it. */
export interface EventRow {
  seq: number;
  time: string;
  type: string;
  run_id: number | null;
  environment: string | null;
  body: string;
}

/** The family an event type belongs to, if any. */
export function familyOf(type: string): TimelineFamily | null {
  for (const [family, patterns] of Object.entries(FAMILIES) as [TimelineFamily, readonly string[]][]) {
    if (patterns.some((p) => matches(p, type))) return family;
  }
  return null;
}

/** Checks a `kinds` entry: a family, or an event type such as "run.finished". */
export function checkKind(kind: string): void {
  if (typeof kind !== 'string' || !(Object.hasOwn(FAMILIES, kind) || /^[a-z]+(\.[a-z_]+)+$/.test(kind))) {
    throw new InputError(
      `unknown kind ${JSON.stringify(kind)}`,
      `use a family (${Object.keys(FAMILIES).join(', ')}) or an event type such as run.finished`,
    );
  }
}

/** One page of the timeline, newest first. */
export function timelinePage(db: SqliteDatabase, q: TimelineFilter, scanSpan: number): TimelinePage {
  const selection = selectTypes(presentTypes(db), q);
  if (q.stage !== undefined) for (const type of [...selection.keys()]) if (stagePath(type) === null) selection.delete(type);
  const inspecting = q.stage !== undefined || q.text !== undefined;
  // Rows with lo < seq < before.
  const lo = inspecting ? Math.max(0, q.before - 1 - scanSpan) : 0;
  if (selection.size === 0 || q.before <= 1) return { items: [], next: null };

  const likes: string[] = [];
  if (q.stage !== undefined) likes.push(`%${likeEscape(JSON.stringify(q.stage))}%`);
  if (q.text !== undefined) for (const token of tokens(q.text)) likes.push(`%${likeEscape(token)}%`);
  const likeSql = likes.map(() => ` AND body LIKE ? ESCAPE '\\'`).join('');
  // The stage's name where each type keeps it: CASE type WHEN <type> THEN json_extract(body, <path>) ...
  const stageSql = (types: string[]) => (q.stage === undefined ? '' : ` AND (CASE type ${types.map(() => 'WHEN ? THEN json_extract(body, ?)').join(' ')} END) = ?`);
  const stageParams = (types: string[]) => (q.stage === undefined ? [] : [...types.flatMap((t) => [t, stagePath(t)!]), q.stage]);
  const chunk = inspecting ? 256 : q.limit + 1;
  const columns = 'SELECT seq, time, type, run_id, environment, body FROM events';

  const streams: Stream[] = [];
  if (q.environment !== undefined || inspecting) {
    // One stream: the environment's index, or the span of the table itself.
    const whole = [...selection].filter(([, where]) => where === null).map(([type]) => type);
    const partial = [...selection].filter(([, where]) => where !== null);
    const typeSql = [
      whole.length ? `type IN (${whole.map(() => '?').join(', ')})` : null,
      ...partial.map(([, where]) => `(type = ? AND ${where})`),
    ].filter(Boolean);
    const typeParams = [...whole, ...partial.map(([type]) => type)];
    const env = q.environment !== undefined ? [q.environment] : [];
    const source = env.length ? 'INDEXED BY events_env WHERE environment = ? AND' : 'NOT INDEXED WHERE';
    const stmt = db.prepare(`${columns} ${source} seq < ? AND seq > ? AND (${typeSql.join(' OR ')})${likeSql}${stageSql(typeParams)} ORDER BY seq DESC LIMIT ?`);
    const rest = [...typeParams, ...likes, ...stageParams(typeParams)];
    streams.push(new Stream((upper, n) => stmt.all<EventRow>(...env, upper, lo, ...rest, n), q.before, chunk));
  } else {
    // A stream per type, each through the (type, seq) index: a page reads about `limit` rows of each.
    for (const [type, where] of selection) {
      const stmt = db.prepare(`${columns} WHERE type = ? AND seq < ? AND seq > ?${where ? ` AND ${where}` : ''} ORDER BY seq DESC LIMIT ?`);
      streams.push(new Stream((upper, n) => stmt.all<EventRow>(type, upper, lo, n), q.before, chunk));
    }
  }

  const needle = q.text?.toLowerCase();
  const items: TimelineItem[] = [];
  for (;;) {
    let best: Stream | undefined;
    for (const s of streams) {
      const head = s.head();
      if (head && (!best || head.seq > best.head()!.seq)) best = s;
    }
    if (!best) return { items, next: lo > 0 ? lo + 1 : null };
    const row = best.take();
    const event = JSON.parse(row.body) as SequencedEvent;
    const item = rowToItem(row, event);
    if (needle !== undefined && !item.title.toLowerCase().includes(needle) && !containsText(event, needle)) continue;
    items.push(item);
    if (items.length === q.limit) {
      const more = inspecting || streams.some((s) => s.head() !== undefined);
      return { items, next: more && item.seq > 1 ? item.seq : null };
    }
  }
}

/** The event types in the history, read off the (type, seq) index one type at a time. */
function presentTypes(db: SqliteDatabase): string[] {
  return db
    .prepare(
      `WITH RECURSIVE t(type) AS (
         SELECT (SELECT MIN(type) FROM events)
         UNION ALL
         SELECT (SELECT MIN(type) FROM events WHERE type > t.type) FROM t WHERE t.type IS NOT NULL
       ) SELECT type FROM t WHERE type IS NOT NULL`,
    )
    .all<{ type: string }>()
    .map((r) => r.type);
}

/** The types to read, each with the SQL condition that limits its rows (null: all of them). */
function selectTypes(present: string[], q: TimelineFilter): Map<string, string | null> {
  const out = new Map<string, string | null>();
  if (!q.kinds || q.kinds.length === 0) {
    for (const type of present) if (type !== 'log' || q.includeLogs) out.set(type, null);
    return out;
  }
  for (const kind of q.kinds) {
    const family = Object.hasOwn(FAMILIES, kind) ? (kind as TimelineFamily) : null;
    for (const type of present) {
      if (family ? FAMILIES[family].some((p) => matches(p, type)) : type === kind) {
        out.set(type, null);
      } else if (family && PARTIAL[family]?.[type] && out.get(type) !== null) {
        out.set(type, PARTIAL[family]![type]);
      }
    }
  }
  if (!q.includeLogs && !q.kinds.some((k) => k === 'log')) out.delete('log');
  return out;
}

function matches(pattern: string, type: string): boolean {
  return pattern.endsWith('.') ? type.startsWith(pattern) : type === pattern;
}

/** Rows of one query, newest first, fetched a chunk at a time. */
class Stream {
  private rows: EventRow[] = [];
  private pos = 0;
  private done = false;

  constructor(
    private readonly fetch: (upper: number, n: number) => EventRow[],
    private upper: number,
    private readonly chunk: number,
  ) {}

  head(): EventRow | undefined {
    if (this.pos >= this.rows.length && !this.done) {
      this.rows = this.fetch(this.upper, this.chunk);
      this.pos = 0;
      if (this.rows.length < this.chunk) this.done = true;
      if (this.rows.length) this.upper = this.rows[this.rows.length - 1].seq;
    }
    return this.rows[this.pos];
  }

  take(): EventRow {
    return this.rows[this.pos++];
  }
}

/** A timeline item from an events row (its event parsed again when not given). */
export function rowToItem(row: EventRow, e: SequencedEvent = JSON.parse(row.body) as SequencedEvent): TimelineItem {
  const { title, level } = describeEvent(e);
  const links = linksOf(e);
  return {
    seq: row.seq,
    time: row.time,
    type: row.type,
    family: familyOf(row.type),
    title,
    level,
    links: { runId: row.run_id, environment: row.environment, release: links.release, deployment: links.deployment },
  };
}

function linksOf(e: SequencedEvent): { release: number | null; deployment: number | null } {
  switch (e.type) {
    case 'release.created':
      return { release: e.release.number, deployment: null };
    case 'deployment.changed':
      return { release: e.deployment.toRelease, deployment: e.deployment.id };
    case 'deployment.progress':
      return { release: null, deployment: e.deploymentId };
    case 'approval.changed':
      return { release: e.approval.release, deployment: e.approval.deploymentId };
    case 'environment.health':
      return { release: e.release, deployment: null };
    default:
      return { release: null, deployment: null };
  }
}

/** The JSON path of an event type's stage name, or null when it has none. */
function stagePath(type: string): string | null {
  return Object.hasOwn(STAGE_PATHS, type) ? STAGE_PATHS[type] : '$.stage';
}

/** Whether any text or number in the event contains `needle` (lower case). */
function containsText(value: unknown, needle: string): boolean {
  if (typeof value === 'string') return value.toLowerCase().includes(needle);
  if (typeof value === 'number') return String(value).includes(needle);
  if (Array.isArray(value)) return value.some((v) => containsText(v, needle));
  if (value && typeof value === 'object') return Object.values(value).some((v) => containsText(v, needle));
  return false;
}

/**
 * The words and numbers of a search text, as they appear in an event's JSON: every item whose
 * title or text contains the search text has each of them in its JSON (the titles are made of
 * the event's own values and type).
 */
function tokens(text: string): string[] {
  const words = text.match(/[\p{L}\p{N}]+/gu) ?? [];
  return [...new Set(words.map((w) => JSON.stringify(w).slice(1, -1)))].slice(0, 8);
}

function likeEscape(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
