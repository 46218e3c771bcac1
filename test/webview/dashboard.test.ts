/**
 * The dashboards in a real browser (headless chromium through playwright-core), served by a real
 * agent on a real git repository with a real history: a passing run that deploys to production
 * on the process runtime, a run whose deploy is rolled back (its health check fails), a run whose
 * test report has a failing test named like markup and whose log has ANSI colours, and commits
 * between them. Sign-in (token to cookie, 401 without), the Run page (graph, logs, search,
 * tests, deploys), the Metrics page, the Timeline (filters, paging, live events, what changed
 * before an incident), the CSP, text never becoming markup, and reconnects.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page, type WebSocketRoute } from 'playwright-core';
import type { Agent } from '../../agent/agent';
import { dashboardUrl } from '../../agent/server/dashboard';
import { cli, finished, pipelineYaml, startAgent, startRun, TempRepo, until } from '../support/fixtures';
import { serviceSource } from '../support/service';

const CHROMIUM = process.env.CONVEYOR_CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOTS = path.resolve(__dirname, '..', '..', '..', 'test-output', 'screenshots');
const XSS = '<img src=x onerror=alert(1)>';

const CONFIG = pipelineYaml(
  `
- name: build
  run:
    - echo "building the app"
    - printf '\\033[32mcompiled ok\\033[0m <b>not bold</b>\\n'
- name: test
  needs: [build]
  run: sh test.sh
  report: { format: tap, path: report.tap }
- name: package
  needs: [build]
  run: mkdir -p dist && tar -czf dist/app.tgz server.js
  artifacts: [dist/app.tgz]
- name: production
  kind: deploy
  environment: production
  needs: [test, package]
- name: perf
  kind: load
  environment: production
  needs: [production]
  load: { path: /, connections: 2, duration: 500ms }
- name: audit
  kind: scan
  workdir: app
  scan: { sources: [{ osv: advisories }], failOn: critical }
`,
  `environments:
  production:
    runtime: process
    promotion: auto
    start: node server.js
    health: { http: /healthz, timeout: 3s, interval: 100ms }
`,
);

const PASSING_TESTS = `cat > report.tap <<'TAP'
TAP version 13
ok 1 - adds numbers
ok 2 - greets
1..2
TAP
echo "2 tests passed"
`;

const FAILING_TESTS = `cat > report.tap <<TAP
TAP version 13
ok 1 - adds numbers
not ok 2 - ${XSS}
  ---
  duration_ms: 1.5
  location: '$PWD/test/app.test.js:3:5'
  error: 'expected <b>1</b> to equal 2'
  ...
1..2
TAP
printf '\\033[31mFAIL\\033[0m ${XSS} \\033[1mexpected 1 to equal 2\\033[0m\\n'
exit 1
`;

const APP_TEST = `const assert = require('node:assert');\n\nassert.equal(1, 2);\n`;

/** A lockfile with known vulnerable versions and the OSV records that say so (the scan tests' fixtures). */
function scanFixtures(): Record<string, string> {
  const fixtures = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'scan');
  const files: Record<string, string> = {};
  const walk = (dir: string, to: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(path.join(dir, entry.name), `${to}/${entry.name}`);
      else files[`${to}/${entry.name}`] = fs.readFileSync(path.join(dir, entry.name), 'utf8');
    }
  };
  walk(path.join(fixtures, 'v2'), 'app');
  walk(path.join(fixtures, 'advisories'), 'advisories');
  return files;
}

function isPng(file: string): boolean {
  const data = fs.readFileSync(file);
  return data.length > 1000 && data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
}

describe('dashboards in a browser (Run, Metrics, Timeline) against a real agent', function () {
  this.timeout(180_000);
  let repo: TempRepo;
  let agent: Agent;
  let context: BrowserContext;
  let profile: string;
  let base: string;
  const runs = { passed: 0, rolledBack: 0, failedTest: 0 };
  const dialogs: string[] = [];
  const shots: string[] = [];

  /** Opens a dashboard page (signed in by the context's cookie) and waits for its event stream. */
  async function open(address: string, page?: Page): Promise<Page> {
    const p = page ?? (await context.newPage());
    p.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await p.goto(`${base}/dashboard/${address}`);
    await p.locator('.conn-live').waitFor();
    return p;
  }

  async function shot(page: Page, name: string): Promise<void> {
    const file = path.join(SCREENSHOTS, `dashboard-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  }

  /** The CSP violations the page reported (collected by the init script). */
  const violations = (page: Page): Promise<string[]> => page.evaluate('window.__violations') as Promise<string[]>;

  before(async function () {
    repo = new TempRepo({
      'conveyor.yml': CONFIG,
      'server.js': serviceSource('hello v1'),
      'test.sh': PASSING_TESTS,
      'test/app.test.js': APP_TEST,
      '.gitignore': 'dist/\nreport.tap\n',
      ...scanFixtures(),
    });
    agent = await startAgent(repo);
    runs.passed = (await finished(agent, await startRun(agent, { trigger: 'manual' }))).id;
    repo.write({ 'server.js': serviceSource('hello v2', { healthy: false }) });
    repo.commit('break the health check <script>alert("commit")</script>');
    runs.rolledBack = (await finished(agent, await startRun(agent, { trigger: 'manual' }))).id;
    repo.write({ 'server.js': serviceSource('hello v3'), 'test.sh': FAILING_TESTS });
    repo.commit('a test that fails');
    runs.failedTest = (await finished(agent, await startRun(agent, { trigger: 'manual' }))).id;
    assert.deepEqual(
      [runs.passed, runs.rolledBack, runs.failedTest].map((id) => agent.store.getRun(id)!.status),
      ['succeeded', 'failed', 'failed'],
    );
    base = `http://127.0.0.1:${agent.port}`;

    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-dashboard-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1300, height: 900 } });
    await context.addInitScript(`
      window.__violations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || '')));
    `);
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    if (agent) {
      const runtime = agent.runtimes.get('process');
      if (runtime.ok) await runtime.value.remove('production').catch(() => undefined);
      await agent.stop();
    }
    repo?.dispose();
  });

  it('answers 401 without a token or cookie, with a page that says to run conveyor dashboard', async () => {
    for (const address of ['/dashboard/', '/dashboard/run.html', '/dashboard/run.js']) {
      const res = await fetch(`${base}${address}`);
      assert.equal(res.status, 401, address);
      assert.match(await res.text(), /conveyor dashboard/);
    }
    const wrong = await fetch(`${base}/dashboard/?token=not-the-token`, { redirect: 'manual' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('set-cookie'), null);
    const page = await context.newPage();
    const res = await page.goto(`${base}/dashboard/metrics.html`);
    assert.equal(res?.status(), 401);
    assert.match(await page.locator('body').innerText(), /Run conveyor dashboard in the workspace/);
    await page.close();
  });

  it('conveyor dashboard prints the address that signs in; the token becomes an HttpOnly cookie and leaves the address', async () => {
    const printed = await cli(['dashboard', '--no-open'], { cwd: repo.dir });
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout.trim(), dashboardUrl(agent.port, agent.discovery.token));
    const noDisplay = await cli(['dashboard'], { cwd: repo.dir, env: { DISPLAY: '', WAYLAND_DISPLAY: '' } });
    assert.equal(noDisplay.code, 0);
    assert.match(noDisplay.stderr, /no display/);

    const page = await context.newPage();
    const res = await page.goto(printed.stdout.trim());
    assert.equal(res?.status(), 200);
    assert.equal(page.url(), `${base}/dashboard/`, 'the token is gone from the address');
    assert.match(res!.headers()['content-security-policy'], /script-src 'nonce-[^']+'/);
    const cookies = await context.cookies(base);
    const cookie = cookies.find((c) => c.name === `conveyor_${agent.port}`);
    assert.ok(cookie, `the sign-in cookie is set: ${JSON.stringify(cookies)}`);
    assert.equal(cookie.value, agent.discovery.token);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.path, '/');
    assert.equal(await page.evaluate('document.cookie'), '', 'page scripts cannot read it');
    // The page's own calls are authenticated by the cookie alone.
    await page.locator('.conn-live').waitFor();
    await page.locator('.run-header h1').filter({ hasText: `Run #${runs.failedTest}` }).waitFor();
    await page.close();
  });

  it('Run page: the stage graph, clicking stages, logs with ANSI colours, and a search that marks and jumps', async () => {
    const page = await open(`run.html?run=${runs.failedTest}`);
    const nodes = page.locator('svg.dag g.node');
    await until(async () => (await nodes.count()) === 6, 'six stages in the graph');
    assert.deepEqual(await nodes.evaluateAll((els) => els.map((e) => e.getAttribute('data-stage'))), ['build', 'audit', 'test', 'package', 'production', 'perf']);
    assert.match((await page.locator('g.node[data-stage="test"]').getAttribute('class'))!, /node-failed/);
    assert.match((await page.locator('g.node[data-stage="production"]').getAttribute('class'))!, /node-skipped/);
    // The failed stage is shown first, with its log: ANSI colours as classes, markup as text.
    await page.locator('.stage-head h2', { hasText: 'test' }).waitFor();
    const fail = page.locator('.log span.ansi-fg-1', { hasText: 'FAIL' });
    await fail.waitFor();
    assert.match(await page.locator('.log').innerText(), /FAIL <img src=x onerror=alert\(1\)> expected 1 to equal 2/);
    assert.equal(await page.locator('.log span.ansi-bold').first().innerText(), 'expected 1 to equal 2');

    await page.locator('g.node[data-stage="build"]').click();
    await page.locator('.stage-head h2', { hasText: 'build' }).waitFor();
    assert.equal(await page.locator('g.node[data-stage="build"]').getAttribute('aria-pressed'), 'true');
    const green = page.locator('.log span.ansi-fg-2', { hasText: 'compiled ok' });
    await green.waitFor();
    assert.match(await page.locator('.log').innerText(), /compiled ok <b>not bold<\/b>/);
    assert.equal(await page.locator('.log b').count(), 0, 'markup in a log line stays text');

    // Search: every match marked, the first one current; Enter moves to the next, and wraps.
    const field = page.locator('vscode-textfield.log-search input');
    await field.fill('o');
    await until(async () => (await page.locator('.log-count').innerText()).endsWith(`of ${await page.locator('.log mark[data-match]').evaluateAll((els) => new Set(els.map((e) => e.getAttribute('data-match'))).size)}`), 'the count of matches');
    const count = await page.locator('.log-count').innerText();
    const total = Number(/of (\d+)/.exec(count)![1]);
    assert.ok(total >= 3, count);
    assert.equal(count, `1 of ${total}`);
    assert.equal(await page.locator('.log mark.current').first().getAttribute('data-match'), '0');
    await field.press('Enter');
    await page.locator('.log-count', { hasText: `2 of ${total}` }).waitFor();
    assert.equal(await page.locator('.log mark.current').first().getAttribute('data-match'), '1');
    await field.press('Shift+Enter');
    await field.press('Shift+Enter');
    await page.locator('.log-count', { hasText: `${total} of ${total}` }).waitFor();
    // The step's header (its command) and its output both hold the text.
    await field.fill('COMPILED OK');
    await page.locator('.log-count', { hasText: '1 of 2' }).waitFor();
    await field.press('Enter');
    await page.locator('.log-count', { hasText: '2 of 2' }).waitFor();
    const current = page.locator('.log mark.current');
    assert.equal(await current.innerText(), 'compiled ok');
    assert.match((await current.getAttribute('class'))!, /ansi-fg-2/, 'the mark keeps the colour of the text it covers');
    await shot(page, 'run');
    assert.deepEqual(await violations(page), []);
    await page.close();
  });

  it('Run page: test results render names and messages as text, failures with their location; deploys of a run', async () => {
    const page = await open(`run.html?run=${runs.failedTest}`);
    await page.locator('vscode-tab-header[data-tab="tests"]').click();
    const failure = page.locator('.test-stage[data-stage="test"] .failure');
    await failure.waitFor();
    assert.equal(await failure.locator('.test-name').innerText(), XSS);
    assert.match(await failure.locator('.failure-message').innerText(), /expected <b>1<\/b> to equal 2/);
    assert.match(await failure.locator('.test-location').innerText(), /app\.test\.js:3/);
    assert.equal(await page.locator('img').count(), 0, 'no <img> was created from a test name');
    assert.equal(await page.locator('.panel-tests b').count(), 0);
    assert.match((await page.locator('vscode-tab-header[data-tab="tests"]').textContent())!, /1 failed/);
    await shot(page, 'run-tests');

    await page.goto(`${base}/dashboard/run.html?run=${runs.rolledBack}`);
    await page.locator('.run-header h1', { hasText: `Run #${runs.rolledBack}` }).waitFor();
    assert.match(await page.locator('.run-title').innerText(), /<script>alert\("commit"\)<\/script>/);
    await page.locator('vscode-tab-header[data-tab="deployments"]').click();
    const row = page.locator('.panel-deployments tbody tr');
    await row.first().waitFor();
    assert.match(await row.first().innerText(), /production\s+1 → 2\s+rolled back/);
    await page.locator('vscode-tab-header[data-tab="artifacts"]').click();
    assert.match(await page.locator('.panel-artifacts').innerText(), /dist\/app\.tgz\s+file\s+sha256:/);
    assert.equal(await page.locator('script').count(), 1, 'only the page’s own script');
    assert.deepEqual(dialogs, []);
    await page.close();
  });

  it('Run page: the scan findings and load results of a run, and controls styled under the CSP', async () => {
    const page = await open(`run.html?run=${runs.passed}`);
    await page.locator('.run-header h1', { hasText: `Run #${runs.passed} succeeded` }).waitFor();
    await page.locator('vscode-tab-header[data-tab="scans"]').click();
    const scan = page.locator('.panel-scans section.scan');
    await scan.waitFor();
    assert.match(await scan.locator('h3').innerText(), /^audit: no advisory at or above critical/);
    const findings = scan.locator('tbody tr');
    assert.ok((await findings.count()) > 0);
    assert.match(await findings.first().innerText(), /^(high|moderate|low)\s+\S+@\d/);
    await page.locator('vscode-tab-header[data-tab="loads"]').click();
    const load = page.locator('.panel-loads tbody tr');
    await load.first().waitFor();
    assert.match(await load.first().innerText(), /^perf\s+production\s+\d+\s+0\.0 %\s+[\d.]+\/s/);
    // @vscode-elements style their shadow roots with constructed style sheets: the CSP lets them.
    const transform = await page.evaluate(`getComputedStyle(document.querySelector('vscode-tab-header').shadowRoot.querySelector('.wrapper')).textTransform`);
    assert.equal(transform, 'uppercase');
    assert.deepEqual(await violations(page), []);
    await page.close();
  });

  it('Run page: a run that does not exist, or a bad number, is said so', async () => {
    const page = await open('run.html?run=999');
    await page.locator('.banner', { hasText: 'no run #999' }).waitFor();
    assert.match(await page.locator('.banner').innerText(), /GET \/api\/runs lists the runs/);
    await page.goto(`${base}/dashboard/run.html?run=abc`);
    await page.locator('.banner', { hasText: '"abc" is not a run number' }).waitFor();
    await page.locator('.conn-live').waitFor();
    assert.equal(await page.locator('.banner').isVisible(), true, 'the stream going live keeps the page’s error');
    await page.close();
  });

  it('Metrics page: DORA keys of production with their bands, builds per day, durations per stage', async () => {
    const page = await open('metrics.html');
    const frequency = page.locator('.card[data-metric="deploymentFrequency"]');
    await frequency.waitFor();
    assert.match(await page.locator('.dora h2').innerText(), /production · last 30 days/);
    assert.match(await frequency.locator('.card-detail').innerText(), /^1 deployment$/);
    assert.match(await page.locator('.card[data-metric="changeFailureRate"] .card-detail').innerText(), /^1 of 2 deployments \(#\d+\)$/);
    assert.match(await page.locator('.card[data-metric="changeFailureRate"] .card-value').innerText(), /^50 %$/);
    assert.match(await page.locator('.builds-summary').innerText(), /^3 runs · 1 succeeded · 2 failed/);
    await page.locator('.chart-builds canvas').first().waitFor();
    for (const stage of ['build', 'test', 'package']) await page.locator(`.duration-stage[data-stage="${stage}"] canvas`).first().waitFor();
    assert.match(await page.locator('.load-stage[data-stage="perf"] h3').innerText(), /^perf · 1 run$/);
    await page.locator('.load-stage[data-stage="perf"] canvas').first().waitFor();
    // Another window: the page asks again.
    await page.locator('vscode-single-select.days-select').click();
    await page.locator('vscode-single-select.days-select').getByRole('option', { name: '7 days' }).click();
    await page.locator('.dora h2', { hasText: 'last 7 days' }).waitFor();
    await shot(page, 'metrics');
    assert.deepEqual(await violations(page), [], 'uPlot and the controls work under the CSP');
    await page.close();
  });

  it('Timeline: filters by kind and by text, pages with "Load more", and shows what changed before a rolled-back deploy', async () => {
    const page = await open('timeline.html');
    const items = page.locator('article.item');
    await items.first().waitFor();
    const first = await items.count();
    assert.equal(first, 50, 'one page');
    await page.locator('vscode-button.load-more').click();
    await until(async () => (await items.count()) > first, 'the next page');
    const seqs = await items.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
    assert.equal(new Set(seqs).size, seqs.length, 'no event twice');
    assert.deepEqual([...seqs].sort((a, b) => b - a), seqs, 'newest first');
    assert.ok(await page.locator('h3.day', { hasText: 'Today' }).count(), 'grouped by day');

    // Kinds: deploys only.
    for (const kind of ['run', 'test', 'drift', 'alert', 'commit', 'config', 'agent']) await page.locator(`vscode-checkbox[data-kind="${kind}"]`).click();
    await until(async () => (await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-family')))).every((f) => f === 'deploy'), 'deploy events only');
    assert.ok((await items.count()) > 0);
    // Text, debounced.
    await page.locator('vscode-textfield.filter-text input').fill('rolled back');
    await until(async () => {
      const titles = await items.locator('.title').allInnerTexts();
      return titles.length > 0 && titles.every((t) => /rolled back/i.test(t));
    }, 'only rolled-back deploys');
    const incident = items.filter({ hasText: /Deploy #\d+ production 1 → 2 rolled back/ }).first();
    await incident.locator('vscode-button.what-changed').click();
    const side = page.locator('aside.changes');
    const commit = side.locator('li.commit');
    await commit.first().waitFor();
    assert.equal(await commit.count(), 1, 'the one commit between the good release and the bad one');
    assert.equal(await commit.locator('.commit-subject').innerText(), 'break the health check <script>alert("commit")</script>');
    assert.match(await commit.innerText(), /\+\d+ −\d+/);
    assert.match(await side.innerText(), /last good: production@1 · [0-9a-f]{7} · failing: production@2/);
    await commit.locator('a.commit-link').click();
    await side.locator('.patch').waitFor();
    assert.match(await side.locator('.patch').innerText(), /diff --git a\/server\.js b\/server\.js/);
    assert.equal(await page.locator('script').count(), 1, 'the commit message made no script element');
    await shot(page, 'timeline-changes');
    assert.deepEqual(await violations(page), []);
    await page.close();
  });

  it('follows live: the Run page moves to a new run and the Timeline puts its events on top', async () => {
    const run = await open('run.html');
    await run.locator('.run-header h1', { hasText: `Run #${runs.failedTest}` }).waitFor();
    const timeline = await open('timeline.html');
    await timeline.locator('article.item').first().waitFor();
    const id = await startRun(agent, { trigger: 'manual', stages: ['build'] });
    await run.locator('.run-header h1', { hasText: `Run #${id} succeeded` }).waitFor();
    await run.locator('g.node[data-stage="build"].node-succeeded').waitFor();
    const finishedItem = timeline.locator('article.item', { hasText: `Run #${id} succeeded` });
    await finishedItem.waitFor();
    assert.match((await finishedItem.getAttribute('class'))!, /\bfresh\b/, 'marked as new');
    const seqs = await timeline.locator('article.item').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
    assert.deepEqual([...seqs].sort((a, b) => b - a), seqs, 'new events on top, newest first');
    await shot(timeline, 'timeline');
    await Promise.all([run.close(), timeline.close()]);
  });

  it('the CSP blocks an injected inline script and reports the violation', async () => {
    const page = await open('timeline.html');
    await page.evaluate(`(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__pwned = true';
      document.body.appendChild(s);
    })()`);
    await until(async () => (await violations(page)).length > 0, 'a CSP violation report');
    assert.equal(await page.evaluate('window.__pwned === undefined'), true, 'the inline script did not run');
    assert.match((await violations(page)).join('\n'), /script-src/);
    await page.close();
  });

  it('reconnects after the socket drops and shows what happened meanwhile', async () => {
    const page = await context.newPage();
    let down = false;
    const sockets = new Set<WebSocketRoute>();
    await page.routeWebSocket(/\/api\/events/, (ws) => {
      if (down) return void ws.close({ code: 1012, reason: 'network down' });
      ws.connectToServer();
      sockets.add(ws);
    });
    await open('run.html', page);
    await page.locator('.run-header h1').first().waitFor();
    down = true;
    for (const ws of sockets) await ws.close({ code: 1012, reason: 'network down' });
    sockets.clear();
    await page.locator('.conn-reconnecting').waitFor();
    repo.commit('made while the dashboard was away');
    const id = (await finished(agent, await startRun(agent, { trigger: 'manual', stages: ['build'] }))).id;
    assert.equal(await page.locator('.run-header h1', { hasText: `Run #${id}` }).count(), 0, 'not shown while disconnected');
    down = false;
    await page.locator('.conn-live').waitFor();
    await page.locator('.run-header h1', { hasText: `Run #${id} succeeded` }).waitFor();
    assert.match(await page.locator('.run-title').innerText(), /made while the dashboard was away/);
    await page.close();
  });

  it('says when the agent is away, and after it restarts with a new token, to sign in again', async () => {
    const page = await open('timeline.html');
    const port = agent.port;
    await agent.stop();
    await page.locator('.conn-unreachable').waitFor();
    assert.match(await page.locator('.banner').innerText(), /does not answer/);
    agent = await startAgent(repo, { port });
    await page.locator('.conn-unauthorized').waitFor();
    assert.match(await page.locator('.banner').innerText(), /Run `conveyor dashboard`/);
    await page.close();
  });

  it('saved its screenshots as PNG files', () => {
    assert.ok(shots.length >= 4, shots.join(', '));
    for (const file of shots) assert.ok(isPng(file), `${file} is a non-empty PNG`);
  });
});
