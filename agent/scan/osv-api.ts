import { err, ok, type Result } from '../util/lifecycle';
import { isHttpUrl, mapLimit, requestJson } from './http';
import { advisoryFor, describeAdvisory, isOsvRecord, NPM, type OsvRecord } from './osv';
import { addMatch, type Matches, type PackageQuery, type SourceAnswer, type SourceContext } from './source';

/** The OSV API takes at most this many queries in one batch. */
const BATCH_SIZE = 1000;
/** Advisory details fetched at once. */
const DETAIL_CONCURRENCY = 8;
/** Pages of one batch before the source gives up on a service that never stops paging. */
const MAX_PAGES = 100;

interface BatchAnswer {
  results?: { vulns?: { id?: unknown }[]; next_page_token?: unknown }[];
}

/**
 * The `osv-api` source: the OSV API (https://api.osv.dev, or a mirror with the same routes).
 * `POST /v1/querybatch` names the advisories of each version (following page tokens), then
 * `GET /v1/vulns/{id}` gives each advisory's record, a few at a time. Any request that fails
 * (no DNS, refused, no answer in time, a status other than 2xx) makes the source unreachable
 * with that reason.
 */
export async function queryOsvApi(url: string, queries: PackageQuery[], ctx: SourceContext): Promise<SourceAnswer> {
  const base = url.replace(/\/+$/, '');
  const label = `OSV API ${base}`;
  if (!isHttpUrl(base)) return { label, result: err(`"${url}" is not an http:// or https:// URL; write the OSV API's address in full, e.g. https://api.osv.dev`) };
  const ids = await advisoryIds(base, queries, ctx);
  if (!ids.ok) return { label, result: ids };
  const unique = [...new Set(ids.value.flat())];
  const records = new Map<string, OsvRecord>();
  const failures = await mapLimit(unique, DETAIL_CONCURRENCY, async (id): Promise<string | null> => {
    const got = await request('GET', `${base}/v1/vulns/${encodeURIComponent(id)}`, undefined, ctx);
    if (!got.ok) return got.error;
    if (!isOsvRecord(got.value)) return `GET ${base}/v1/vulns/${id} answered something that is not an OSV record`;
    records.set(id, got.value);
    return null;
  });
  const failure = failures.find((f) => f !== null);
  if (failure) return { label, result: err(failure) };
  const matches: Matches = new Map();
  queries.forEach((q, i) => {
    for (const id of new Set(ids.value[i])) {
      const record = records.get(id)!;
      // The service matched the version; the record still says which version fixes it.
      addMatch(matches, q, advisoryFor(record, q.name, q.version) ?? describeAdvisory(record, q.name, null));
    }
  });
  return { label, result: ok(matches) };
}

/** The advisory ids of each query, in the queries' order. */
async function advisoryIds(base: string, queries: PackageQuery[], ctx: SourceContext): Promise<Result<string[][], string>> {
  const ids: string[][] = queries.map(() => []);
  for (let start = 0; start < queries.length; start += BATCH_SIZE) {
    let pending = queries.slice(start, start + BATCH_SIZE).map((q, i) => ({ index: start + i, q, pageToken: undefined as string | undefined }));
    for (let page = 1; pending.length > 0; page++) {
      if (page > MAX_PAGES) return err(`POST ${base}/v1/querybatch still had more pages after ${MAX_PAGES}`);
      const body = {
        queries: pending.map(({ q, pageToken }) => ({ package: { name: q.name, ecosystem: NPM }, version: q.version, ...(pageToken ? { page_token: pageToken } : {}) })),
      };
      const got = await request('POST', `${base}/v1/querybatch`, body, ctx);
      if (!got.ok) return got;
      const results = (got.value as BatchAnswer).results;
      if (!Array.isArray(results) || results.length !== pending.length) {
        return err(`POST ${base}/v1/querybatch answered without a "results" list of ${pending.length} entries; is ${base} an OSV API?`);
      }
      const next: typeof pending = [];
      results.forEach((r, i) => {
        for (const v of r?.vulns ?? []) if (typeof v?.id === 'string') ids[pending[i].index].push(v.id);
        if (typeof r?.next_page_token === 'string' && r.next_page_token) next.push({ ...pending[i], pageToken: r.next_page_token });
      });
      pending = next;
    }
  }
  return ok(ids);
}

async function request(method: 'GET' | 'POST', url: string, body: unknown, ctx: SourceContext): Promise<Result<unknown, string>> {
  const got = await requestJson(method, url, body, ctx);
  return got.ok ? got : err(`${method} ${url} ${got.error.status === null && got.error.reason !== 'cancelled' ? 'failed: ' : ''}${got.error.reason}`);
}
