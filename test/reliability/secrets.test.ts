import * as assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DeploymentInfo, RunDetail, RunSummary, SequencedEvent } from '../../agent/protocol';
import { TempRepo, until } from '../support/fixtures';
import { AgentProcess, removeInstances } from './agentProcess';
import { recordFigures, zero, info } from './figures';
import { allEvents } from './history';
import { rawRequest } from './http';
import { allRoutes, concretePath } from './routes';

/** From the agent's environment; split in two at its first "-" by one stage. */
const API_KEY = 'hunter2-correct-horse-battery';
/** From .conveyor/secrets.env; its URL and JSON forms differ from it. */
const FILE_KEY = 'f1le/s3cr3t+p@ss&q="x"';
/** Long enough that `base64` wraps its encoding at 76 columns. */
const LONG_KEY = 'ghp_' + 'Zq8LmW3vRt5yXb7NcK2pHs9dFj4gTa6e'.repeat(2);

const SCRIPTS: Record<string, string> = {
  'leak/plain.sh': `echo "plain $API_KEY"\necho "stderr $FILE_KEY" >&2\nprintf 'no newline %s' "$LONG_KEY"\n`,
  // Two writes with a pause between: the value is never in one chunk.
  'leak/split.sh': `s="$API_KEY"\nprintf '%s' "\${s%%-*}"\nsleep 0.4\nprintf '%s\\n' "-\${s#*-}"\n`,
  'leak/chatter.sh': `i=0\nwhile [ $i -lt 80 ]; do echo "chatter $i"; i=$((i+1)); sleep 0.01; done\n`,
  'leak/encoded.sh': [
    `printf '%s' "$API_KEY" | base64`,
    `printf '%s' "$FILE_KEY" | base64 -w0; echo`,
    `printf '%s' "$LONG_KEY" | base64`,
    // HTTP Basic credentials: the value's base64 at an offset inside a longer one.
    `printf 'ci-user:%s' "$API_KEY" | base64`,
    `node -e 'console.log(encodeURIComponent(process.env.FILE_KEY))'`,
    `node -e 'console.log(JSON.stringify({ key: process.env.FILE_KEY }))'`,
    '',
  ].join('\n'),
  'leak/report.js': `
const fs = require('node:fs');
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
fs.mkdirSync('reports', { recursive: true });
fs.writeFileSync('reports/junit.xml', \`<?xml version="1.0"?>
<testsuite name="auth" tests="2" failures="1">
  <testcase classname="auth" name="logs in with \${esc(process.env.API_KEY)}">
    <failure message="expected \${esc(process.env.FILE_KEY)} to equal x" type="AssertionError">AssertionError: expected '\${esc(process.env.FILE_KEY)}'
    at Context.&lt;anonymous&gt; (test/auth.test.js:3:9)</failure>
    <system-out>\${esc(process.env.LONG_KEY)}</system-out>
  </testcase>
  <testcase classname="auth" name="passes"/>
</testsuite>\`);
process.exit(1);
`,
  'leak/unreadable.sh': `mkdir -p reports\nprintf '<testsuite name="%s"><testcase' "$API_KEY" > reports/bad.xml\n`,
  'leak/artifact.sh': `mkdir -p dist\necho built > "dist/build-$API_KEY.txt"\n`,
  // The service says its token as it starts, then fails: the deploy is rolled back with its last lines.
  'server.js': `console.log('starting with token ' + process.env.API_KEY);\nconsole.error('FILE_KEY=' + process.env.FILE_KEY);\nprocess.exit(1);\n`,
};

/**
 * The value split in two writes is printed beside a chatty stage (the two run at once); the other
 * forms are printed one stage after another, then the service is deployed.
 */
const CONFIG = `
pipeline:
  maxParallel: 10
  stages:
    - { name: split, run: sh leak/split.sh }
    - { name: chatter, run: sh leak/chatter.sh }
    - { name: plain, run: sh leak/plain.sh, needs: [split, chatter] }
    - { name: encoded, run: sh leak/encoded.sh, needs: [plain] }
    - name: unreadable
      run: sh leak/unreadable.sh
      report: { format: junit, path: reports/bad.xml }
      needs: [encoded]
    - name: artifact
      run: sh leak/artifact.sh
      artifacts: [dist/*.txt]
      needs: [unreadable]
    - name: report
      run: node leak/report.js
      report: { format: junit, path: reports/junit.xml }
      needs: [artifact]
    - name: package
      run: mkdir -p pkg && tar -czf pkg/app.tgz server.js
      artifacts: [pkg/app.tgz]
      needs: [artifact]
    - name: svc
      kind: deploy
      environment: svc
      artifact: package
      needs: [package]
environments:
  svc: { promotion: auto, start: node server.js, health: { timeout: 5s, interval: 100ms } }
secrets: [API_KEY, FILE_KEY, LONG_KEY]
`;

/** One way a secret can be written down. */
interface Needle {
  secret: string;
  form: string;
  text: string;
  /** Also looked for with line breaks taken out (an encoder that wraps its lines). */
  unwrapped?: boolean;
}

/** Each secret in the forms the masker promises to catch, and the halves of the one printed in two writes. */
function needles(): Needle[] {
  const out: Needle[] = [];
  for (const [secret, value] of Object.entries({ API_KEY, FILE_KEY, LONG_KEY })) {
    const json = JSON.stringify(value).slice(1, -1);
    const b64 = Buffer.from(value).toString('base64');
    out.push(
      { secret, form: 'plain', text: value },
      { secret, form: 'base64', text: b64.replace(/=+$/, ''), unwrapped: true },
      { secret, form: 'URL-encoded', text: encodeURIComponent(value) },
      { secret, form: 'JSON-escaped', text: json },
      { secret, form: 'JSON-escaped twice', text: JSON.stringify(json).slice(1, -1) },
      ...[1, 2].map((offset) => ({ secret, form: `base64 inside a longer value (offset ${offset})`, text: base64Within(value, offset), unwrapped: true })),
    );
  }
  const dash = API_KEY.indexOf('-');
  out.push({ secret: 'API_KEY', form: 'first half', text: API_KEY.slice(0, dash) }, { secret: 'API_KEY', form: 'second half', text: API_KEY.slice(dash) });
  return out.filter((n, i) => out.findIndex((m) => m.text === n.text) === i);
}

/**
 * The part of the base64 of (`offset` bytes, then `value`) that depends on the value alone: what
 * any text holding the value `offset` bytes into a 3-byte group shows, whatever surrounds it.
 */
function base64Within(value: string, offset: number): string {
  const bytes = Buffer.byteLength(value);
  const encoded = Buffer.concat([Buffer.alloc(offset), Buffer.from(value)]).toString('base64');
  return encoded.slice(4 * Math.ceil(offset / 3), 4 * Math.floor((offset + bytes) / 3));
}

/** Where a needle was found: the kind of place, which one, and how often. */
interface Finding {
  place: string;
  where: string;
  needle: Needle;
  count: number;
}

function occurrences(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** Files under a folder, recursively, with their paths relative to it. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((rel) => fs.statSync(path.join(dir, rel)).isFile());
}

describe('reliability: secrets (seeded values printed every way, then searched everywhere)', function () {
  this.timeout(180_000);
  const suite = 'Secrets';
  let repo: TempRepo;
  let agent: AgentProcess;
  let runId: number;
  const findings: Finding[] = [];
  const searched = new Map<string, number>();

  const search = (place: string, where: string, text: string) => {
    searched.set(place, (searched.get(place) ?? 0) + 1);
    const flat = text.replace(/\r?\n/g, '');
    const whole = text.includes(API_KEY);
    for (const needle of needles()) {
      // A half counts where the whole value is not: the value was cut, and a part got through.
      if (needle.form.endsWith('half') && whole) continue;
      const direct = occurrences(text, needle.text);
      const count = needle.unwrapped ? Math.max(direct, occurrences(flat, needle.text)) : direct;
      if (count) findings.push({ place, where, needle, count });
    }
  };

  before(async () => {
    repo = new TempRepo({ 'conveyor.yml': CONFIG, ...SCRIPTS });
    fs.mkdirSync(repo.path('.conveyor'), { recursive: true });
    fs.writeFileSync(repo.path('.conveyor', 'secrets.env'), `# never in git\nFILE_KEY=${FILE_KEY}\n`);
    agent = await AgentProcess.start(repo.dir, { API_KEY, LONG_KEY });
    const run = await agent.client.request<RunSummary>('POST', '/runs', {});
    runId = run.id;
    await until(async () => ['failed', 'succeeded'].includes((await agent.client.request<RunSummary>('GET', `/runs/${runId}`)).status), 'the leaky run to end', 90_000);
    await until(async () => (await agent.client.request<{ current: unknown }[]>('GET', '/environments')).every((e) => e.current === null), 'the deploy to end', 60_000);
  });

  after(async () => {
    await agent?.stop();
    if (repo) {
      await removeInstances(repo, ['svc']);
      repo.dispose();
    }
  });

  it('the pipeline printed each secret every way (or the search proves nothing)', async () => {
    const run = await agent.client.request<RunDetail>('GET', `/runs/${runId}`);
    const byName = new Map(run.stages.map((s) => [s.name, s.status]));
    for (const name of ['plain', 'split', 'chatter', 'encoded', 'package', 'artifact']) assert.equal(byName.get(name), 'succeeded', `${name}: ${JSON.stringify(run.stages.find((s) => s.name === name))}`);
    assert.equal(byName.get('report'), 'failed', 'the report stage fails one test');
    const logs = await agent.client.request<string>('GET', `/runs/${runId}/logs`);
    // Masked, so the values were there to mask.
    assert.match(logs, /plain \*\*\*/);
    assert.match(logs, /stderr \*\*\*/);
    const deployment = await agent.client.request<DeploymentInfo>('GET', '/deployments/1');
    assert.notEqual(deployment.status, 'succeeded', 'the service fails to start');
  });

  it('no secret in any form in the logs, events, database rows, database files, API answers, dashboard pages or git', async () => {
    const conveyor = repo.path('.conveyor');
    // Files the agent writes: every log and state file; not the secrets file itself, nor the
    // artifacts' and releases' contents (the user's own build output).
    for (const rel of filesUnder(conveyor)) {
      if (rel === 'secrets.env' || rel.startsWith(`artifacts${path.sep}`) || rel.includes(`${path.sep}releases${path.sep}`) || rel.startsWith(`work${path.sep}`)) continue;
      search('file names under .conveyor', rel, rel);
      if (rel.startsWith('history.db')) continue;
      const place = rel.startsWith(`logs${path.sep}`) ? 'step log files' : rel.includes(`${path.sep}logs${path.sep}`) ? 'service instance log files' : 'other files under .conveyor';
      search(place, rel, fs.readFileSync(path.join(conveyor, rel), 'latin1'));
    }
    for (const f of ['history.db', 'history.db-wal']) {
      const file = path.join(conveyor, f);
      if (fs.existsSync(file)) search('database file and WAL (raw bytes)', f, fs.readFileSync(file, 'latin1'));
    }
    const events: SequencedEvent[] = await allEvents(agent.client);
    for (const e of events) search('events', `${e.type} #${e.seq}`, JSON.stringify(e));
    // Every GET of the API, with the ids that exist.
    const run = await agent.client.request<RunDetail>('GET', `/runs/${runId}`);
    const head = repo.git('rev-parse', 'HEAD').trim();
    const get = async (p: string) => {
      const a = await rawRequest({ port: agent.port, method: 'GET', path: p, headers: { authorization: `Bearer ${agent.token}` } });
      search('API answers', p, a.body);
      return a;
    };
    for (const route of allRoutes().filter((r) => r.method === 'GET')) {
      for (const id of route.path.includes(':id') ? ['1', '2', String(runId)] : ['1']) await get(concretePath(route, { id, name: 'svc', sha: head }));
    }
    for (const s of run.stages) {
      await get(`/api/runs/${runId}/logs?stage=${encodeURIComponent(s.name)}`);
      await get(`/api/runs/${runId}/logs?stage=${encodeURIComponent(s.name)}&step=0`);
    }
    for (const q of ['/api/events?since=0&limit=10000', '/api/timeline?logs=1&limit=500', '/api/incidents/changes?deployment=1', '/api/alerts?all=1']) await get(q);
    // The dashboard's pages, when the agent serves them.
    for (const page of ['/dashboard/', '/dashboard/run.html', '/dashboard/metrics.html', '/dashboard/timeline.html']) {
      const a = await rawRequest({ port: agent.port, method: 'GET', path: page, headers: { authorization: `Bearer ${agent.token}` } });
      if (a.status === 200) search('dashboard pages', page, a.body);
    }
    // What git keeps: the state branch, its files and messages.
    const stateLog = repo.git('log', '--all', '-p', '--format=%H%n%B');
    search('git history (state branch included)', 'git log --all -p', stateLog);
    search("agent's own output", 'stdout and stderr', agent.log());
    // Rows, once the agent let go of the database.
    await agent.stop();
    const db = new Database(path.join(conveyor, 'history.db'), { readonly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
      for (const { name } of tables) {
        for (const row of db.prepare(`SELECT * FROM "${name}"`).all()) search('database rows', name, JSON.stringify(row));
      }
    } finally {
      db.close();
    }
    for (const f of ['history.db', 'history.db-wal']) {
      const file = path.join(conveyor, f);
      if (fs.existsSync(file)) search('database file and WAL (raw bytes)', `${f} after stop`, fs.readFileSync(file, 'latin1'));
    }

    const places = [...searched.keys()];
    recordFigures([
      info(suite, 'secrets seeded and searched', `3 (environment, secrets.env, a 64-character token), ${needles().length} forms, in ${[...searched.values()].reduce((a, b) => a + b, 0).toLocaleString('en-US')} places`),
      ...places.map((place) => zero(suite, `occurrences in ${place}`, findings.filter((f) => f.place === place).reduce((n, f) => n + f.count, 0))),
    ]);
    const summary = [...new Set(findings.map((f) => `${f.place}: ${f.needle.secret} (${f.needle.form}) in ${f.where}`))];
    assert.deepEqual(summary, []);
  });
});
