import { isDeepStrictEqual } from 'node:util';
import type { SmokeProbe } from '../protocol';
import { err, ok, type Result } from '../util/lifecycle';
import type { AttemptContext } from './executor';

/** The most of a body a probe reads and compares. */
const MAX_BODY_BYTES = 1024 * 1024;
/** The most of a value shown as "actual" in a message. */
const MAX_SHOWN = 200;

/** What one probe saw: every check it failed, with the first failure's expected and actual values. */
export interface ProbeOutcome {
  ok: boolean;
  url: string;
  status: number | null;
  durationMs: number;
  /** What failed, for people: "expected status 200, got 503; body does not contain \"ok\"". */
  message: string | null;
  expected: string | null;
  actual: string | null;
}

/** The URL of the environment a stage tests, from the deploy phase. */
export async function environmentUrl(ctx: AttemptContext): Promise<Result<string, string>> {
  const environment = ctx.stage.environment;
  if (!environment) return err(`stage "${ctx.stage.name}" names no environment; add "environment: <name>"`);
  if (!ctx.deployer) return err('this agent has no deploy phase, so it knows no environment URL');
  const url = await ctx.deployer.environmentUrl(environment);
  if (!url.ok) return err(`${url.error.error}${url.error.fix ? ` (${url.error.fix})` : ''}`);
  return ok(url.value);
}

/** A request's URL: an absolute `url`, or `path` on the environment's URL. */
export function targetUrl(base: string, path: string | null, url: string | null): string {
  return url ?? `${base.replace(/\/+$/, '')}${path ?? '/'}`;
}

/**
 * Sends one probe's request once (no retries), bounded by its time-out, and checks the answer:
 * the status, the time it took, the texts it must contain, the pattern it must match and the
 * values at its JSON paths. Never throws: a connection that fails is a failed probe naming the URL.
 */
export async function runProbe(base: string, probe: SmokeProbe, signal?: AbortSignal): Promise<ProbeOutcome> {
  const url = targetUrl(base, probe.path, probe.url);
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  const timeout = AbortSignal.timeout(probe.timeoutMs);
  const failed = (message: string, expected: string | null = null, actual: string | null = null): ProbeOutcome => ({
    ok: false,
    url,
    status: null,
    durationMs: elapsed(),
    message,
    expected,
    actual,
  });
  let res: Response;
  let body: string;
  try {
    res = await fetch(url, {
      method: probe.method,
      headers: { 'user-agent': 'conveyor-smoke', ...probe.headers },
      body: probe.body ?? undefined,
      redirect: 'manual',
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    body = await readBody(res);
  } catch (e) {
    if (timeout.aborted) return failed(`${probe.method} ${url}: no answer within ${formatDuration(probe.timeoutMs)} (the probe's timeout)`, `an answer within ${formatDuration(probe.timeoutMs)}`, 'no answer');
    if (signal?.aborted) return failed(`${probe.method} ${url}: cancelled`);
    return failed(`${probe.method} ${url}: ${connectionError(e)}`, `status ${probe.status.join(' or ')}`, 'no answer');
  }
  const durationMs = elapsed();
  const problems: { message: string; expected: string; actual: string }[] = [];
  if (!probe.status.includes(res.status)) {
    problems.push({ message: `expected status ${probe.status.join(' or ')}, got ${res.status}`, expected: probe.status.join(' or '), actual: String(res.status) });
  }
  if (probe.withinMs !== null && durationMs > probe.withinMs) {
    problems.push({ message: `expected an answer within ${formatDuration(probe.withinMs)}, took ${formatDuration(durationMs)}`, expected: `<= ${probe.withinMs} ms`, actual: `${durationMs} ms` });
  }
  for (const text of probe.contains) {
    if (!body.includes(text)) problems.push({ message: `expected the body to contain ${JSON.stringify(text)}, got ${shown(body)}`, expected: text, actual: clip(body) });
  }
  if (probe.matches !== null && !new RegExp(probe.matches).test(body)) {
    problems.push({ message: `expected the body to match /${probe.matches}/, got ${shown(body)}`, expected: `/${probe.matches}/`, actual: clip(body) });
  }
  if (Object.keys(probe.json).length > 0) problems.push(...jsonProblems(body, probe.json));
  if (problems.length === 0) return { ok: true, url, status: res.status, durationMs, message: null, expected: null, actual: null };
  return {
    ok: false,
    url,
    status: res.status,
    durationMs,
    message: problems.map((p) => p.message).join('; '),
    expected: problems[0].expected,
    actual: problems[0].actual,
  };
}

function jsonProblems(body: string, expected: Record<string, unknown>): { message: string; expected: string; actual: string }[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return [{ message: `expected a JSON body, got ${shown(body)}`, expected: 'JSON', actual: clip(body) }];
  }
  const out: { message: string; expected: string; actual: string }[] = [];
  for (const [path, want] of Object.entries(expected)) {
    const got = jsonPath(doc, path);
    if (got.found && isDeepStrictEqual(got.value, want)) continue;
    const actual = got.found ? clip(JSON.stringify(got.value) ?? 'undefined') : 'nothing';
    out.push({ message: `expected ${path} to be ${JSON.stringify(want)}, got ${actual}`, expected: JSON.stringify(want), actual });
  }
  return out;
}

/**
 * The value at a JSON path of the dotted form the config allows: `$`, then `.key`, `[index]` or
 * `["key"]` parts (`$.items[0].id`).
 */
export function jsonPath(doc: unknown, path: string): { found: boolean; value?: unknown } {
  const part = /\.([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\["([^"]*)"\]/y;
  if (!path.startsWith('$')) return { found: false };
  let value = doc;
  let pos = 1;
  while (pos < path.length) {
    part.lastIndex = pos;
    const m = part.exec(path);
    if (!m) return { found: false };
    pos = part.lastIndex;
    if (m[2] !== undefined) {
      if (!Array.isArray(value) || Number(m[2]) >= value.length) return { found: false };
      value = value[Number(m[2])];
    } else {
      const key = m[1] ?? m[3];
      if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.prototype.hasOwnProperty.call(value, key)) return { found: false };
      value = (value as Record<string, unknown>)[key];
    }
  }
  return { found: true, value };
}

/** Reads at most MAX_BODY_BYTES of the body as text, and drops the rest. */
async function readBody(res: Response): Promise<string> {
  if (!res.body) return '';
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    text += decoder.decode(value, { stream: true });
    if (bytes >= MAX_BODY_BYTES) {
      await reader.cancel();
      break;
    }
  }
  return text + decoder.decode();
}

/** What a failed connection means, in words: fetch hides the code in `cause`. */
export function connectionError(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code ?? (e as { code?: string })?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused: nothing listens there (is the environment deployed and running?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'the connection was closed before an answer came';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'the host cannot be reached';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'the connection timed out';
    default:
      return cause?.message ?? (e as Error)?.message ?? String(e);
  }
}

/** "250 ms", "1.5 s". */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms * 10) / 10} ms` : `${Math.round(ms / 100) / 10} s`;
}

function clip(s: string): string {
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}…` : s;
}

function shown(body: string): string {
  return body.length === 0 ? 'an empty body' : JSON.stringify(clip(body));
}
