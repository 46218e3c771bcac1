/**
 * The dashboards in a real VS Code (code-server 4.100.3 = VS Code 1.100.3): runs the suite of
 * test/vscode/suite/dashboards.spec.ts inside the extension host while this test looks into the
 * workbench page through Playwright: each webview is an iframe, and the page inside it must show
 * what the agent answered (the page calls the agent itself, with the token the panel gave it).
 * The suite waits for a file per page that this test writes once it has seen the page.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as util from 'node:util';
import { chromium, type Frame, type Page } from 'playwright-core';
import { chromiumPath, repoRoot, startCodeServer, testOutputDir, waitForWorkbench, type CodeServer } from './harness';
import { pipelineYaml, TempRepo, WORKSPACE_SETTINGS } from './suite/repo';

/** The title of the suite in test/vscode/suite/dashboards.spec.ts (that file loads vscode, so it is not imported). */
const DASHBOARDS_SUITE = 'Conveyor dashboards in editor webviews';

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-proxy-server'];

const CONFIG = pipelineYaml(`
- name: build
  run: echo "building"
- name: test
  needs: [build]
  run: echo "tests pass"
`);

/** The text of the first frame (at any depth) whose document has `selector`, once it has `text`. */
async function webviewText(page: Page, selector: string, text: RegExp, timeoutMs = 90_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    for (const frame of page.frames()) {
      const found = await textIn(frame, selector);
      if (found === undefined) continue;
      last = found;
      if (text.test(found)) return found;
    }
    if (Date.now() > deadline) throw new Error(`no webview showed ${selector} with ${text} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The first defined value of an expression over the page's frames. */
async function inFrames(page: Page, expression: string): Promise<string | undefined> {
  for (const frame of page.frames()) {
    const v = (await frame.evaluate(expression).catch(() => undefined)) as string | undefined;
    if (v !== undefined && v !== null) return v;
  }
  return undefined;
}

async function textIn(frame: Frame, selector: string): Promise<string | undefined> {
  try {
    const el = frame.locator(selector).first();
    if ((await el.count()) === 0) return undefined;
    return (await el.textContent({ timeout: 1000 })) ?? '';
  } catch {
    return undefined;
  }
}

describe('Dashboards in VS Code webviews: Open Metrics and Open Run Dashboard (real extension host)', function () {
  this.timeout(8 * 60_000);
  let repo: TempRepo;
  let signals: string;
  let server: CodeServer | undefined;

  before(function () {
    for (const file of ['cli.js', 'extension.js', 'webview/run.js', 'webview/metrics.js']) {
      assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', file)), `dist/${file} exists (npm run build)`);
    }
    repo = new TempRepo({ 'conveyor.yml': CONFIG, '.vscode/settings.json': WORKSPACE_SETTINGS });
    signals = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-dashboard-signals-'));
  });

  after(async function () {
    await server?.stop();
    if (repo) {
      try {
        const d = JSON.parse(fs.readFileSync(path.join(repo.dir, '.conveyor', 'agent.json'), 'utf8')) as { pid: number };
        process.kill(d.pid, 'SIGKILL');
      } catch {
        // no agent left
      }
      repo.dispose();
    }
    if (signals) fs.rmSync(signals, { recursive: true, force: true });
  });

  it('the pages render in their webviews, calling the agent with the panel’s token', async function () {
    server = await startCodeServer({ folder: repo.dir, env: { CONVEYOR_SUITE_GREP: DASHBOARDS_SUITE, CONVEYOR_DASHBOARD_SIGNALS: signals } });
    const profile = path.join(server.runDir, 'chromium-dashboards');
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath(),
      headless: true,
      args: FLAGS,
      viewport: { width: 1400, height: 900 },
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
    const lines: string[] = [];
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      let finish!: (code: number) => void;
      const exited = new Promise<number>((resolve) => (finish = resolve));
      await page.exposeFunction('codeAutomationLog', (_type: unknown, args: unknown) => lines.push(util.format(...(Array.isArray(args) ? args : [args]))));
      await page.exposeFunction('codeAutomationExit', (code: unknown) => finish(Number(code)));
      const root = repoRoot();
      const authority = `127.0.0.1:${server.port}`;
      const payload = [
        ['extensionDevelopmentPath', `vscode-remote://${authority}${root}`],
        ['extensionTestsPath', `vscode-remote://${authority}${path.join(root, 'out', 'test', 'vscode', 'suite', 'index.js')}`],
      ];
      await page.goto(`${server.url}/?folder=${encodeURIComponent(repo.dir)}&payload=${encodeURIComponent(JSON.stringify(payload))}`, { waitUntil: 'domcontentloaded' });
      await waitForWorkbench(page);

      // The Metrics page inside its webview: the builds of the one run, from the agent.
      const metrics = await webviewText(page, '#app[data-page="metrics"] .builds-summary', /^1 run · 1 succeeded/);
      // The controls' constructed style sheets apply inside the webview, under its CSP.
      const border = await inFrames(page, `(() => { const face = document.querySelector('#app[data-page="metrics"] vscode-single-select')?.shadowRoot?.querySelector('.select-face'); return face ? getComputedStyle(face).borderTopStyle : undefined; })()`);
      assert.equal(border, 'solid', "the select's own style sheet applies in its shadow root");
      fs.writeFileSync(path.join(signals, 'metrics'), metrics);
      const run = await webviewText(page, '#app[data-page="run"]', /Run #\d+ succeeded[\s\S]*build[\s\S]*test/);
      fs.mkdirSync(path.join(testOutputDir(), 'screenshots'), { recursive: true });
      await page.screenshot({ path: path.join(testOutputDir(), 'screenshots', 'vscode-dashboard-run.png') });
      fs.writeFileSync(path.join(signals, 'run'), run);

      const code = await Promise.race([exited, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`the suite did not finish:\n${lines.join('\n')}`)), 5 * 60_000))]);
      const output = lines.join('\n');
      console.log(output.replace(/^/gm, '    | '));
      assert.equal(code, 0, 'the in-editor suite passed (its output is above)');
      assert.match(output, /2 passing/);
      assert.doesNotMatch(output, /failing|pending/);
    } finally {
      await context.close().catch(() => undefined);
    }
  });
});
