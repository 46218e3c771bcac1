import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as semver from 'semver';
import type { OsvRecord } from '../../agent/scan/osv';
import { gate, scan, type Finding, type ScanReport, type ScanSource } from '../../agent/scan/scan';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/scan');
const ADVISORIES = path.join(FIXTURES, 'advisories');
const V2 = path.join(FIXTURES, 'v2');
const FOLDER: ScanSource = { kind: 'osv-folder', path: ADVISORIES };

async function scanned(sources: ScanSource[], opts: { cwd?: string; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ScanReport> {
  const r = await scan({ cwd: opts.cwd ?? V2, lockfiles: ['package-lock.json'], sources, timeoutMs: opts.timeoutMs, signal: opts.signal });
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value;
}

/** A finding without what depends on the source that reported it. */
const essence = (f: Finding) => ({ ...f, source: undefined });
const brief = (f: Finding) => `${f.severity} ${f.package}@${f.version} ${f.id} fixed:${f.fixedIn} via:${f.via.join('>')} at:${f.declared ? `${f.declared.file}:${f.declared.line}:${f.declared.column}` : '-'} ${f.source}`;

/** A real HTTP server on 127.0.0.1 for the scan tests; `requests` records what it was asked. */
interface TestServer {
  url: string;
  requests: { method: string; path: string; body: unknown }[];
  close(): Promise<void>;
}

async function serve(handler: (req: { method: string; path: string; body: unknown }, res: http.ServerResponse) => void): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const r = { method: req.method ?? '', path: req.url ?? '', body: text ? (JSON.parse(text) as unknown) : undefined };
      requests.push(r);
      handler(r, res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** A port on 127.0.0.1 where nothing listens (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const s = await serve(() => undefined);
  const port = Number(new URL(s.url).port);
  await s.close();
  return port;
}

/**
 * An OSV-compatible API over a folder of records, the way an air-gapped mirror serves them:
 * `POST /v1/querybatch` (one advisory per page, to exercise page tokens) and `GET /v1/vulns/:id`.
 * It matches versions its own way: each introduced..fixed / ..last_affected pair of events as a
 * semver range, and the `versions` lists.
 */
async function serveOsvFolder(folder: string): Promise<TestServer> {
  const records: OsvRecord[] = fs
    .readdirSync(folder, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(folder, f), 'utf8')) as OsvRecord);
  const affects = (r: OsvRecord, name: string, version: string) =>
    !r.withdrawn &&
    (r.affected ?? []).some((a) => {
      if (a.package?.ecosystem !== 'npm' || a.package.name !== name) return false;
      if (a.versions?.includes(version)) return true;
      return (a.ranges ?? []).some((range) => {
        const spans: string[] = [];
        let from: string | null = null;
        for (const e of range.events ?? []) {
          if (e.introduced !== undefined) {
            from = e.introduced === '0' ? '0.0.0-0' : e.introduced;
          } else if (from !== null && (e.fixed !== undefined || e.last_affected !== undefined)) {
            spans.push(e.fixed !== undefined ? `>=${from} <${e.fixed}` : `>=${from} <=${e.last_affected}`);
            from = null;
          }
        }
        if (from !== null) spans.push(`>=${from}`);
        return spans.length > 0 && semver.satisfies(version, spans.join(' || '), { includePrerelease: true });
      });
    });
  return serve((req, res) => {
    if (req.method === 'POST' && req.path === '/v1/querybatch') {
      const queries = (req.body as { queries: { package: { name: string; ecosystem: string }; version: string; page_token?: string }[] }).queries;
      const results = queries.map((q) => {
        const ids = q.package.ecosystem === 'npm' ? records.filter((r) => affects(r, q.package.name, q.version)).map((r) => r.id) : [];
        const start = Number(q.page_token ?? 0);
        const page = ids.slice(start, start + 1).map((id) => ({ id, modified: '2024-01-01T00:00:00Z' }));
        return start + 1 < ids.length ? { vulns: page, next_page_token: String(start + 1) } : page.length ? { vulns: page } : {};
      });
      return json(res, 200, { results });
    }
    const vuln = req.method === 'GET' ? /^\/v1\/vulns\/([^/]+)$/.exec(req.path) : null;
    const record = vuln ? records.find((r) => r.id === decodeURIComponent(vuln[1])) : undefined;
    if (record) return json(res, 200, record);
    json(res, 404, { code: 5, message: 'Not Found' });
  });
}

describe('scan: the OSV folder source', () => {
  it('finds every advisory of the fixture project, most severe first, each with chain and declaration', async () => {
    const report = await scanned([FOLDER]);
    assert.equal(report.packages, 8);
    assert.deepEqual(report.lockfiles, ['package-lock.json']);
    assert.deepEqual(report.sources, [{ source: 'osv-folder', label: `OSV folder ${ADVISORIES}`, status: 'scanned', reason: null, advisories: 6 }]);
    assert.deepEqual(report.findings.map(brief), [
      'high minimist@1.2.5 GHSA-34mm-494v-m3w5 fixed:null via:minimist at:package.json:11:5 osv-folder',
      'high qs@6.5.1 GHSA-g6j3-4v5h-w3r8 fixed:6.5.3 via:express>body-parser>qs at:package.json:7:5 osv-folder',
      'high qs@6.5.2 GHSA-g6j3-4v5h-w3r8 fixed:6.5.3 via:express>qs at:package.json:7:5 osv-folder',
      'moderate @acme/widgets@2.0.0-beta.2 GHSA-9w3w-wj39-3v6f fixed:2.0.0-beta.3 via:@acme/widgets at:package.json:6:5 osv-folder',
      'moderate left-pad@1.3.0 GHSA-pwph-f979-4wfr fixed:1.3.1 via:left-pad at:package.json:8:5 osv-folder',
      'moderate qs@6.5.1 GHSA-qm34-vwgg-hxqw fixed:6.5.2 via:express>body-parser>qs at:package.json:7:5 osv-folder',
      'low express@4.16.0 GHSA-m6v5-wfv7-5ww8 fixed:null via:express at:package.json:7:5 osv-folder',
    ]);
    const leftPad = report.findings.find((f) => f.package === 'left-pad')!;
    assert.equal(leftPad.severityBasis, 'unknown');
    assert.equal(leftPad.summary, 'left-pad before 1.3.1 pads with the wrong character when given a number.');
    const qs = report.findings.find((f) => f.id === 'GHSA-g6j3-4v5h-w3r8')!;
    assert.deepEqual(qs.aliases, ['CVE-2017-18000']);
    assert.equal(qs.url, 'https://github.com/advisories/GHSA-g6j3-4v5h-w3r8');
    assert.equal(qs.lockfile, 'package-lock.json');
  });

  it('scans several lockfiles, each finding under its own', async () => {
    const r = await scan({ cwd: FIXTURES, lockfiles: ['v3/package-lock.json', 'yarn/yarn.lock'], sources: [FOLDER] });
    assert.ok(r.ok, r.ok ? '' : r.error);
    const leftPads = r.value.findings.filter((f) => f.package === 'left-pad').map((f) => `${f.lockfile} ${f.declared?.file}:${f.declared?.line}`);
    assert.deepEqual(leftPads, ['v3/package-lock.json v3/packages/admin/package.json:5', 'yarn/yarn.lock yarn/package.json:8']);
    // string-width (v3 only) and the versions both share, counted once.
    assert.equal(r.value.packages, 9);
  });

  it('is unreachable, saying why, when the folder is missing, empty, or holds a file that is not JSON', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-osv-'));
    try {
      fs.mkdirSync(path.join(tmp, 'empty'));
      fs.mkdirSync(path.join(tmp, 'bad', 'npm'), { recursive: true });
      fs.copyFileSync(path.join(ADVISORIES, 'github-reviewed/2018/GHSA-g6j3-4v5h-w3r8.json'), path.join(tmp, 'bad', 'npm', 'a.json'));
      fs.writeFileSync(path.join(tmp, 'bad', 'npm', 'b.json'), '{\n  "id": "GHSA-x",\n  "affected": [,]\n}\n');
      const missing = await scanned([{ kind: 'osv-folder', path: path.join(tmp, 'missing') }]);
      assert.deepEqual(missing.sources.map((s) => [s.status, s.reason]), [['unreachable', `the folder ${path.join(tmp, 'missing')} does not exist`]]);
      const empty = await scanned([{ kind: 'osv-folder', path: path.join(tmp, 'empty') }]);
      assert.equal(empty.sources[0].reason, `${path.join(tmp, 'empty')} holds no OSV records (*.json files)`);
      const bad = await scanned([{ kind: 'osv-folder', path: path.join(tmp, 'bad') }]);
      assert.equal(bad.sources[0].status, 'unreachable');
      assert.match(bad.sources[0].reason!, /^npm\/b\.json:3:16: not valid JSON: .* \(in .*bad\)$/);
      assert.equal(bad.findings.length, 0);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('scan: the OSV API source', () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it('asks querybatch (following page tokens) and vulns, and finds what the folder finds', async () => {
    const api = await serveOsvFolder(ADVISORIES);
    servers.push(api);
    const viaApi = await scanned([{ kind: 'osv-api', url: `${api.url}/` }]);
    const viaFolder = await scanned([FOLDER]);
    assert.deepEqual(viaApi.sources, [{ source: 'osv-api', label: `OSV API ${api.url}`, status: 'scanned', reason: null, advisories: 6 }]);
    assert.deepEqual(viaApi.findings.map(essence), viaFolder.findings.map(essence));
    assert.ok(viaApi.findings.every((f) => f.source === 'osv-api'));
    const batches = api.requests.filter((r) => r.path === '/v1/querybatch');
    // qs@6.5.1 has two advisories and the server pages one at a time: a second batch asks for its next page.
    assert.equal(batches.length, 2);
    assert.deepEqual((batches[0].body as { queries: unknown[] }).queries[0], { package: { name: '@acme/widgets', ecosystem: 'npm' }, version: '2.0.0-beta.2' });
    assert.deepEqual(batches[1].body, { queries: [{ package: { name: 'qs', ecosystem: 'npm' }, version: '6.5.1', page_token: '1' }] });
    const details = api.requests.filter((r) => r.method === 'GET').map((r) => r.path).sort();
    assert.equal(details.length, 6, 'each advisory is fetched once');
  });

  it('is unreachable with the reason when nothing listens on the port', async () => {
    const port = await closedPort();
    const report = await scanned([{ kind: 'osv-api', url: `http://127.0.0.1:${port}` }, FOLDER]);
    assert.deepEqual(report.sources[0], {
      source: 'osv-api',
      label: `OSV API http://127.0.0.1:${port}`,
      status: 'unreachable',
      reason: `POST http://127.0.0.1:${port}/v1/querybatch failed: connection refused by 127.0.0.1:${port} (nothing listens there)`,
      advisories: 0,
    });
    // The other source still scanned.
    assert.equal(report.sources[1].status, 'scanned');
    assert.equal(report.findings.length, 7);
  });

  it('is unreachable when the host name does not resolve', async () => {
    const report = await scanned([{ kind: 'osv-api', url: 'http://osv-mirror.invalid' }], { timeoutMs: 3000 });
    assert.equal(report.sources[0].status, 'unreachable');
    assert.match(report.sources[0].reason!, /^POST http:\/\/osv-mirror\.invalid\/v1\/querybatch failed: .*osv-mirror\.invalid/);
  });

  it('is unreachable when the service does not answer in time, or answers an error', async () => {
    const silent = await serve(() => undefined);
    servers.push(silent);
    const slow = await scanned([{ kind: 'osv-api', url: silent.url }], { timeoutMs: 300 });
    assert.equal(slow.sources[0].reason, `POST ${silent.url}/v1/querybatch failed: no answer from ${new URL(silent.url).host} within 0.3s`);
    const api = await serveOsvFolder(ADVISORIES);
    servers.push(api);
    const wrong = await scanned([{ kind: 'osv-api', url: `${api.url}/osv` }]);
    assert.equal(wrong.sources[0].reason, `POST ${api.url}/osv/v1/querybatch answered 404 Not Found`);
  });

  it('is unreachable, saying how to write it, when the address is not an http(s) URL', async () => {
    const report = await scanned([{ kind: 'osv-api', url: 'api.osv.dev' }, { kind: 'npm-audit', registry: 'file:///srv/npm' }]);
    assert.deepEqual(
      report.sources.map((s) => [s.status, s.reason]),
      [
        ['unreachable', `"api.osv.dev" is not an http:// or https:// URL; write the OSV API's address in full, e.g. https://api.osv.dev`],
        ['unreachable', `"file:///srv/npm" is not an http:// or https:// URL; write the registry's address in full, e.g. https://registry.npmjs.org/`],
      ],
    );
  });

  it('says "cancelled" when the scan is cancelled', async () => {
    const silent = await serve(() => undefined);
    servers.push(silent);
    const ctl = new AbortController();
    const pending = scanned([{ kind: 'osv-api', url: silent.url }], { signal: ctl.signal });
    while (silent.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    ctl.abort('cancel');
    const report = await pending;
    assert.equal(report.sources[0].reason, `POST ${silent.url}/v1/querybatch cancelled`);
  });
});

describe('scan: the npm audit source', () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it("asks the machine's configured registry; one without the advisories endpoint makes it unreachable", async () => {
    const configured = execFileSync('npm', ['config', 'get', 'registry'], { cwd: V2, encoding: 'utf8' }).trim().replace(/\/*$/, '/');
    const report = await scanned([{ kind: 'npm-audit', registry: null }], { timeoutMs: 20_000 });
    const s = report.sources[0];
    assert.equal(s.label, `npm audit ${configured}`);
    if (s.status === 'unreachable') {
      assert.equal(s.reason, `the registry ${configured} answered 405 to the advisories request (it does not support npm audit)`);
      assert.equal(report.findings.length, 0);
    } else {
      // The registry serves npm audit after all: then its findings are real ones about these packages.
      assert.equal(s.reason, null);
      assert.ok(report.findings.every((f) => f.source === 'npm-audit' && ['qs', 'minimist', 'express', 'body-parser', 'lodash', 'left-pad', '@acme/widgets'].includes(f.package)));
    }
  });

  it('sends every version by name and matches the ranges the registry answers', async () => {
    const registry = await serve((req, res) => {
      if (req.method !== 'POST' || req.path !== '/npm/-/npm/v1/security/advisories/bulk') return json(res, 404, {});
      json(res, 200, {
        qs: [{ id: 1001, url: 'https://github.com/advisories/GHSA-g6j3-4v5h-w3r8', title: 'Prototype pollution in qs', severity: 'high', vulnerable_versions: '<6.2.4 || >=6.3.0 <6.3.3 || >=6.5.0 <6.5.3', cvss: { score: 7.5, vectorString: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H' } }],
        minimist: [{ id: 1002, url: 'https://github.com/advisories/GHSA-34mm-494v-m3w5', title: 'Prototype pollution in minimist', severity: 'critical', vulnerable_versions: '<=1.2.5' }],
        express: [{ id: 1003, url: 'https://www.npmjs.com/advisories/1003', title: 'Old express', severity: 'moderate', vulnerable_versions: '<4.0.0' }],
        lodash: [{ id: 1004, url: 'https://www.npmjs.com/advisories/1004', title: 'Slow templates in lodash', severity: 'info', vulnerable_versions: '>=4.17.0 <4.17.22 || >=5.0.0-0 <5.0.1' }],
        '@acme/widgets': [{ id: 1005, url: 'https://github.com/advisories/GHSA-9w3w-wj39-3v6f', title: 'XSS', severity: 'unheard-of', vulnerable_versions: '<2.0.0' }],
      });
    });
    servers.push(registry);
    const report = await scanned([{ kind: 'npm-audit', registry: `${registry.url}/npm` }]);
    assert.deepEqual(registry.requests[0].body, {
      '@acme/widgets': ['2.0.0-beta.2'],
      'body-parser': ['1.18.2'],
      express: ['4.16.0'],
      'left-pad': ['1.3.0'],
      lodash: ['4.17.21'],
      minimist: ['1.2.5'],
      qs: ['6.5.1', '6.5.2'],
    });
    assert.deepEqual(report.sources[0], { source: 'npm-audit', label: `npm audit ${registry.url}/npm/`, status: 'scanned', reason: null, advisories: 4 });
    assert.deepEqual(report.findings.map(brief), [
      'critical minimist@1.2.5 GHSA-34mm-494v-m3w5 fixed:null via:minimist at:package.json:11:5 npm-audit',
      'high qs@6.5.1 GHSA-g6j3-4v5h-w3r8 fixed:6.5.3 via:express>body-parser>qs at:package.json:7:5 npm-audit',
      'high qs@6.5.2 GHSA-g6j3-4v5h-w3r8 fixed:6.5.3 via:express>qs at:package.json:7:5 npm-audit',
      // An unknown rating counts as moderate; a prerelease is inside "<2.0.0".
      'moderate @acme/widgets@2.0.0-beta.2 GHSA-9w3w-wj39-3v6f fixed:2.0.0 via:@acme/widgets at:package.json:6:5 npm-audit',
      'low lodash@4.17.21 npm-1004 fixed:4.17.22 via:express>body-parser>lodash at:package.json:7:5 npm-audit',
    ]);
    assert.equal(report.findings.find((f) => f.package === '@acme/widgets')!.severityBasis, 'unknown');
    assert.deepEqual(report.findings.find((f) => f.package === 'qs')!.aliases, ['1001']);

    // With the OSV folder first, an advisory both know is reported once, from the folder.
    const both = await scanned([FOLDER, { kind: 'npm-audit', registry: `${registry.url}/npm` }]);
    assert.deepEqual(
      both.findings.map((f) => `${f.package}@${f.version} ${f.id} ${f.source}`),
      [
        'minimist@1.2.5 GHSA-34mm-494v-m3w5 osv-folder',
        'qs@6.5.1 GHSA-g6j3-4v5h-w3r8 osv-folder',
        'qs@6.5.2 GHSA-g6j3-4v5h-w3r8 osv-folder',
        '@acme/widgets@2.0.0-beta.2 GHSA-9w3w-wj39-3v6f osv-folder',
        'left-pad@1.3.0 GHSA-pwph-f979-4wfr osv-folder',
        'qs@6.5.1 GHSA-qm34-vwgg-hxqw osv-folder',
        'express@4.16.0 GHSA-m6v5-wfv7-5ww8 osv-folder',
        'lodash@4.17.21 npm-1004 npm-audit',
      ],
    );
  });

  it('says when a registry refuses the request for another reason', async () => {
    const broken = await serve((_req, res) => json(res, 500, { error: 'boom' }));
    servers.push(broken);
    const report = await scanned([{ kind: 'npm-audit', registry: broken.url }]);
    assert.equal(report.sources[0].reason, `the registry ${broken.url}/ answered 500 to the advisories request`);
  });
});

describe('scan: input and gate', () => {
  it('refuses a scan with no lockfile or no source, and reports a broken lockfile by line', async () => {
    const none = await scan({ cwd: V2, lockfiles: [], sources: [FOLDER] });
    assert.ok(!none.ok && /no lockfile to scan/.test(none.error));
    const nothing = await scan({ cwd: V2, lockfiles: ['package-lock.json'], sources: [] });
    assert.ok(!nothing.ok && /no advisory source/.test(nothing.error));
    const broken = await scan({ cwd: path.join(FIXTURES, 'broken'), lockfiles: ['package-lock.json'], sources: [FOLDER] });
    assert.ok(!broken.ok);
    assert.match(broken.error, /^package-lock\.json:6:5: /);
  });

  it('fails at or above failOn, and lists counts and sources', async () => {
    const report = await scanned([FOLDER]);
    const sources = `OSV folder ${ADVISORIES}: scanned`;
    assert.deepEqual(gate(report, 'critical', 'fail'), { ok: true, message: `no advisory at or above critical (0 critical, 3 high, 3 moderate, 1 low) in 8 packages; ${sources}` });
    assert.deepEqual(gate(report, 'high', 'fail'), { ok: false, message: `3 advisories at or above high (0 critical, 3 high, 3 moderate, 1 low) in 8 packages; ${sources}` });
    assert.equal(gate(report, 'moderate', 'fail').message.split(' (')[0], '6 advisories at or above moderate');
    assert.equal(gate(report, 'low', 'fail').message.split(' (')[0], '7 advisories at or above low');
  });

  it('fails on an unreachable source unless told to warn, and names it either way', async () => {
    const port = await closedPort();
    const report = await scanned([FOLDER, { kind: 'osv-api', url: `http://127.0.0.1:${port}` }]);
    const down = `OSV API http://127.0.0.1:${port}: not scanned: POST http://127.0.0.1:${port}/v1/querybatch failed: connection refused by 127.0.0.1:${port} (nothing listens there)`;
    const failed = gate(report, 'critical', 'fail');
    assert.equal(failed.ok, false);
    assert.equal(
      failed.message,
      `1 of 2 advisory sources could not be scanned (0 critical, 3 high, 3 moderate, 1 low) in 8 packages; OSV folder ${ADVISORIES}: scanned; ${down} (a source that cannot be scanned fails the scan; "unreachable: warn" lets it pass)`,
    );
    const warned = gate(report, 'critical', 'warn');
    assert.equal(warned.ok, true);
    assert.ok(warned.message.includes(down) && warned.message.endsWith('(warning only: "unreachable: warn")'), warned.message);
    // Findings at the threshold fail the gate whatever the sources did.
    assert.equal(gate(report, 'high', 'warn').ok, false);
  });
});
