import { err, ok, type Result } from '../util/lifecycle';

/** Why a request to an advisory service gave no usable answer: a phrase, and the HTTP status when there was one. */
export interface HttpFailure {
  reason: string;
  status: number | null;
}

export interface RequestOptions {
  /** Per request, answer included. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** True for an absolute http:// or https:// URL, the only kind `requestJson` takes. */
export function isHttpUrl(url: string): boolean {
  return URL.canParse(url) && ['http:', 'https:'].includes(new URL(url).protocol);
}

/**
 * Sends a request with a JSON body (or none) to an http(s) URL and reads a JSON answer. Every
 * way it can fail becomes a reason: the host does not resolve, the connection is refused, no
 * answer in time, a status other than 2xx, an answer that is not JSON, or cancel.
 */
export async function requestJson(method: 'GET' | 'POST', url: string, body: unknown, opts: RequestOptions): Promise<Result<unknown, HttpFailure>> {
  const u = new URL(url);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  try {
    const res = await fetch(u, {
      method,
      signal,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) return err({ reason: `answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`, status: res.status });
    try {
      return ok(JSON.parse(text));
    } catch {
      return err({ reason: `answered ${res.status} with a body that is not JSON (${JSON.stringify(text.slice(0, 60))})`, status: res.status });
    }
  } catch (e) {
    if (opts.signal?.aborted) return err({ reason: 'cancelled', status: null });
    if (timeout.aborted) return err({ reason: `no answer from ${u.host} within ${formatSeconds(opts.timeoutMs)}`, status: null });
    return err({ reason: networkReason(e, u), status: null });
  }
}

function networkReason(e: unknown, u: URL): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  switch (cause?.code) {
    case 'ENOTFOUND':
      return `the host name ${u.hostname} does not resolve`;
    case 'EAI_AGAIN':
      return `the host name ${u.hostname} could not be resolved (DNS did not answer)`;
    case 'ECONNREFUSED':
      return `connection refused by ${u.hostname}:${port} (nothing listens there)`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return `${u.host} closed the connection`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${u.hostname} is not reachable from this machine (${cause.code})`;
    default:
      return cause?.message ? `${cause.message}${cause.code ? ` (${cause.code})` : ''}` : (e as Error).message;
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}

/** Runs `fn` over the items with at most `limit` at a time; results in the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
