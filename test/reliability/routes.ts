import * as fs from 'node:fs';
import * as path from 'node:path';

/** A route of the agent's API: `GET /api/runs/:id`, or the WebSocket (`WS /api/events`). */
export interface Route {
  method: string;
  /** With `:param` placeholders. */
  path: string;
  /** The JSON body's fields, when the source says them. */
  fields?: string[];
}

/** The source tree (the compiled suites run from out/test/reliability). */
const ROOT = path.resolve(__dirname, '../../..');

/**
 * The routes of the table in agent/protocol.ts's comment (the API's documentation), so that a
 * route added to the table is covered by every suite that walks it. A cell such as
 * `/api/approvals/:id/approve, /reject` names two routes.
 */
export function routeTable(source = fs.readFileSync(path.join(ROOT, 'agent/protocol.ts'), 'utf8')): Route[] {
  const start = source.indexOf('* Routes (');
  if (start < 0) throw new Error('agent/protocol.ts has no "Routes (" table');
  const end = source.indexOf('*/', start);
  const routes: Route[] = [];
  for (const line of source.slice(start, end).split('\n')) {
    const cells = line.replace(/^\s*\*\s?/, '').split('|').map((c) => c.trim());
    // | method | path | body | answer |: cells[0] is the text before the first bar.
    if (cells.length < 4 || !/^[A-Z]+$/.test(cells[1]) || !cells[2].startsWith('/')) continue;
    const [first, ...others] = cells[2].split(',').map((p) => p.trim());
    // The body cell: `{ branch, template?, via? }`, or the name of an interface of the file.
    const body = /^\{([^}]*)\}/.exec(cells[3])?.[1] ?? interfaceFields(source, cells[3]);
    const fields = body ? body.split(/[,;\n]/).map((f) => f.trim().replace(/\??(:.*)?$/, '')).filter((f) => /^\w+$/.test(f)) : undefined;
    const extra = fields?.length ? { fields } : {};
    routes.push({ method: cells[1], path: first, ...extra });
    // `/api/approvals/:id/approve, /reject` and `/dashboard/run.html, metrics.html` name siblings
    // of the first; `/api/timeline, /api/incidents/changes` names whole paths.
    const top = first.split('/')[1];
    for (const other of others) {
      const whole = other.startsWith(`/${top}/`);
      routes.push({ method: cells[1], path: whole ? other : `${first.slice(0, first.lastIndexOf('/'))}/${other.replace(/^\//, '')}`, ...extra });
    }
  }
  if (routes.length === 0) throw new Error('the route table in agent/protocol.ts lists no route');
  return routes;
}

/** The members of `export interface NAME { ... }` in `source`, one per line, or undefined. */
function interfaceFields(source: string, name: string): string | undefined {
  if (!/^\w+$/.test(name)) return undefined;
  const m = new RegExp(`export interface ${name} \\{([\\s\\S]*?)\\n\\}`).exec(source);
  return m?.[1]
    .split('\n')
    .filter((l) => /^\s+\w+\??:/.test(l))
    .join('\n');
}

/**
 * The routes agent/server/server.ts registers (`r.get('/runs', ...)` under `app.use('/api', r)`,
 * and the WebSocket), read from its source. A `${name}` in a path is expanded with the values of
 * the `for (const name of [...])` loop around it.
 */
export function serverRoutes(source = fs.readFileSync(path.join(ROOT, 'agent/server/server.ts'), 'utf8')): Route[] {
  const mount = /app\.use\(\s*'([^']+)'\s*,\s*r\s*\)/.exec(source)?.[1] ?? '/api';
  const loops = new Map<string, string[]>();
  for (const m of source.matchAll(/for \(const (\w+) of \[([^\]]*)\]/g)) {
    loops.set(m[1], [...m[2].matchAll(/'([^']*)'/g)].map((v) => v[1]));
  }
  const routes: Route[] = [];
  const registrations = [...source.matchAll(/\br\.(get|post|put|patch|delete)\(\s*(['`])([^'`]+)\2/g)];
  for (const [i, m] of registrations.entries()) {
    const method = m[1].toUpperCase();
    // The handler's `objectBody(req.body, [...])` names the fields it takes.
    const handler = source.slice(m.index, registrations[i + 1]?.index ?? source.length);
    const keys = /objectBody\(req\.body, \[([^\]]*)\]\)/.exec(handler)?.[1];
    const fields = keys ? [...keys.matchAll(/'([^']+)'/g)].map((k) => k[1]) : undefined;
    for (const p of expand(m[3], loops)) routes.push({ method, path: mount + p, ...(fields ? { fields } : {}) });
  }
  if (/server\.on\('upgrade'/.test(source)) {
    const ws = /pathname !== '([^']+)'/.exec(source)?.[1];
    if (ws) routes.push({ method: 'WS', path: ws });
  }
  return routes;
}

function expand(template: string, loops: Map<string, string[]>): string[] {
  const m = /\$\{(\w+)\}/.exec(template);
  if (!m) return [template];
  const values = loops.get(m[1]);
  if (!values) throw new Error(`server.ts registers "${template}" with \${${m[1]}}, whose values are not a literal list`);
  return values.flatMap((v) => expand(template.replace(m[0], v), loops));
}

/** Every route of the table and of the server, once each (with the fields either one names). */
export function allRoutes(): Route[] {
  const seen = new Map<string, Route>();
  for (const r of [...routeTable(), ...serverRoutes()]) {
    const known = seen.get(key(r));
    const fields = [...new Set([...(known?.fields ?? []), ...(r.fields ?? [])])];
    seen.set(key(r), { ...r, ...(fields.length ? { fields } : {}) });
  }
  return [...seen.values()];
}

/** "GET /api/runs/:id". */
export function key(r: Route): string {
  return `${r.method} ${r.path}`;
}

/** The route's path with its placeholders filled: `:id` from `values.id`, and so on (default "1"). */
export function concretePath(r: Route, values: Record<string, string> = {}): string {
  return r.path.replace(/:(\w+)/g, (_all, name: string) => encodeText(values[name] ?? '1'));
}

/** encodeURIComponent of any text: a lone surrogate is written as U+FFFD, as UTF-8 would carry it. */
export function encodeText(text: string): string {
  return encodeURIComponent(Buffer.from(text, 'utf8').toString('utf8'));
}
