import type { Alert, AlertsConfig } from '../protocol';

export interface Delivery {
  ok: boolean;
  attempts: number;
  error: string | null;
}

/**
 * POSTs an alert as JSON to a webhook: each attempt with a time-out, retried with back-off
 * (0.5 s, 1 s, 2 s, ...) on a network error or a 5xx/429 answer; a 4xx other than 429 is not
 * retried (the request itself is wrong).
 */
export async function deliverWebhook(hook: NonNullable<AlertsConfig['webhook']>, alert: Alert, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<Delivery> {
  const body = JSON.stringify({ source: 'conveyor', alert });
  let error: string | null = null;
  for (let attempt = 1; attempt <= hook.retries + 1; attempt++) {
    try {
      const res = await fetch(hook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'conveyor-alerts' },
        body,
        signal: AbortSignal.timeout(hook.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return { ok: true, attempts: attempt, error: null };
      error = `${hook.url} answered ${res.status}`;
      if (res.status < 500 && res.status !== 429) return { ok: false, attempts: attempt, error };
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      error = (e as Error).name === 'TimeoutError' ? `${hook.url} did not answer within ${hook.timeoutMs} ms` : `${hook.url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`;
    }
    if (attempt <= hook.retries) await sleep(500 * 2 ** (attempt - 1));
  }
  return { ok: false, attempts: hook.retries + 1, error };
}
