/**
 * The extension as a user meets it, in a real VS Code (code-server 4.100.3) driven through
 * headless chromium: the activity bar icon, the Pipelines view, the command palette, the status
 * bar, a step's log terminal, and Restricted Mode. Screenshots go to test-output/.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { openWorkbench, repoRoot, runCommandFromPalette, screenshot, startCodeServer, waitForWorkbench } from './harness';
import { pipelineYaml, TempRepo, WORKSPACE_SETTINGS } from './suite/repo';

const PUBLISHER_NAME = 'conveyor.conveyor';

/** An extensions folder holding this checkout as an installed extension (a symlink named publisher.name-version). */
function extensionsDirWithCheckout(): string {
  const version = (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-ui-extensions-'));
  fs.symlinkSync(repoRoot(), path.join(dir, `${PUBLISHER_NAME}-${version}`), 'dir');
  return dir;
}

async function openConveyorView(page: Page): Promise<void> {
  const icon = page.locator('.part.activitybar .action-item a[aria-label^="Conveyor"]').first();
  await icon.waitFor({ state: 'visible', timeout: 60_000 });
  await icon.click();
  await page.locator('.pane-header', { hasText: 'Pipelines' }).first().waitFor({ state: 'visible', timeout: 30_000 });
}

/** aria-labels of the rows of the Pipelines tree. */
async function treeRows(page: Page): Promise<string[]> {
  return page.locator('.monaco-list-row[aria-label]').evaluateAll((rows) => rows.map((r) => r.getAttribute('aria-label') ?? ''));
}

async function waitFor<T>(check: () => Promise<T>, what: string, timeoutMs = 90_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('VS Code extension UI (workbench in chromium)', function () {
  this.timeout(6 * 60_000);
  const cleanup: (() => void)[] = [];

  after(function () {
    for (const fn of cleanup.reverse()) fn();
  });

  it('shows a run from the command palette in the Pipelines view, the status bar and a log terminal', async function () {
    const repo = new TempRepo(
      {
        'conveyor.yml': pipelineYaml(`
- name: build
  run: echo "building the app"
- name: lint
  run: echo "lint clean"
- name: test
  needs: [build, lint]
  run: printf '\\033[32m12 passing\\033[0m\\n'
`),
        '.vscode/settings.json': WORKSPACE_SETTINGS,
      },
      'Add the pipeline',
    );
    const extensionsDir = extensionsDirWithCheckout();
    cleanup.push(
      () => repo.dispose(),
      () => fs.rmSync(extensionsDir, { recursive: true, force: true }),
    );
    // The DOM renderer puts the terminal's text in the page, where the test reads it.
    const server = await startCodeServer({ folder: repo.dir, extensionsDir, settings: { 'terminal.integrated.gpuAcceleration': 'off' } });
    try {
      const { page, close } = await openWorkbench(server, { folder: repo.dir });
      try {
        await openConveyorView(page);
        await page.getByText('No runs yet').first().waitFor({ state: 'visible', timeout: 90_000 });
        await runCommandFromPalette(page, 'Conveyor: Run Pipeline');

        const rows = await waitFor(async () => {
          const r = await treeRows(page);
          const done = ['build', 'lint', 'test'].every((s) => r.some((l) => l.startsWith(`Stage ${s}: succeeded`)));
          return done && r.some((l) => l.startsWith('Run #1 succeeded')) ? r : undefined;
        }, 'the run and its three stages to show as succeeded in the tree');
        assert.ok(rows.some((l) => l.startsWith('Run #1 succeeded: Add the pipeline, branch main')), JSON.stringify(rows));
        const runRow = page.locator('.monaco-list-row[aria-label^="Run #1 succeeded"]');
        assert.match((await runRow.innerText()).replace(/\s+/g, ' '), /#1 · Add the pipeline ?main · [0-9a-f]{7} · (just now|\d+ s ago)/);
        assert.equal(await runRow.locator('.codicon-pass-filled').count(), 1, 'the run shows the succeeded icon');
        for (const stage of ['build', 'lint', 'test']) {
          const row = page.locator(`.monaco-list-row[aria-label^="Stage ${stage}: succeeded"]`);
          assert.equal(await row.locator('.codicon-pass-filled').count(), 1, `${stage} shows the succeeded icon`);
        }
        const status = page.locator('.part.statusbar .statusbar-item', { hasText: '#1' }).first();
        await status.waitFor({ state: 'visible', timeout: 30_000 });
        assert.equal(await status.locator('.codicon-check').count(), 1, 'the status bar shows $(check) #1');
        await screenshot(page, 'vscode-ui-pipelines.png');

        // A step's log: expand the test stage, click its step (a leaf opens its log terminal).
        // A click can land while the tree re-renders: expand until the step row shows.
        const stageRow = page.locator('.monaco-list-row[aria-label^="Stage test: succeeded"]').first();
        const step = page.locator('.monaco-list-row[aria-label^="Step printf"]').first();
        await waitFor(
          async () => {
            if (await step.isVisible()) return true;
            if ((await stageRow.getAttribute('aria-expanded')) !== 'true') await stageRow.click();
            await step.waitFor({ state: 'visible', timeout: 2_000 });
            return true;
          },
          'the test stage to show its step',
          30_000,
        );
        await step.click();
        const terminal = page.locator('.terminal-wrapper.active .xterm-rows').first();
        await waitFor(async () => /12 passing/.test(await terminal.innerText()), 'the step output in the terminal', 30_000).catch(async (e: unknown) => {
          await screenshot(page, 'vscode-ui-log-terminal-failed.png');
          const html = await page.locator('.terminal-wrapper').first().evaluate((el) => el.outerHTML.slice(0, 3000)).catch(() => 'no .terminal-wrapper');
          throw new Error(`${(e as Error).message}; terminal DOM: ${html}`);
        });
        await screenshot(page, 'vscode-ui-log-terminal.png');

        // The status bar item reveals its run in the tree.
        assert.equal(await runRow.getAttribute('aria-selected'), 'false');
        await status.click();
        await waitFor(async () => (await runRow.getAttribute('aria-selected')) === 'true', 'the status bar click to select the run in the tree', 30_000);
      } finally {
        await close();
      }
    } finally {
      await server.stop();
    }
  });

  it('offers a starter conveyor.yml in a folder without one; creating it starts the agent', async function () {
    const repo = new TempRepo({ 'package.json': JSON.stringify({ name: 'app', scripts: { test: 'node -e "console.log(1)"' } }), '.vscode/settings.json': WORKSPACE_SETTINGS });
    const extensionsDir = extensionsDirWithCheckout();
    cleanup.push(
      () => repo.dispose(),
      () => fs.rmSync(extensionsDir, { recursive: true, force: true }),
    );
    const server = await startCodeServer({ folder: repo.dir, extensionsDir });
    try {
      const { page, close } = await openWorkbench(server, { folder: repo.dir });
      try {
        await openConveyorView(page);
        await page.getByText('There is no conveyor.yml in this workspace').first().waitFor({ state: 'visible', timeout: 90_000 });
        await screenshot(page, 'vscode-ui-no-config.png');
        await page.locator('.welcome-view-content .monaco-button', { hasText: 'Create Starter conveyor.yml' }).first().click();
        const config = path.join(repo.dir, 'conveyor.yml');
        await waitFor(async () => fs.existsSync(config), 'conveyor.yml to be written', 30_000);
        assert.match(fs.readFileSync(config, 'utf8'), /run: npm test/);
        await page.locator('.tabs-container .tab', { hasText: 'conveyor.yml' }).first().waitFor({ state: 'visible', timeout: 30_000 });
        await waitFor(async () => fs.existsSync(path.join(repo.dir, '.conveyor', 'agent.json')), 'the agent to start for the new conveyor.yml', 60_000);
        await page.getByText('No runs yet').first().waitFor({ state: 'visible', timeout: 60_000 });
      } finally {
        await close();
      }
    } finally {
      await server.stop();
    }
  });

  it('in a multi-root workspace: one agent per folder, runs grouped by folder, Run Pipeline asks which folder', async function () {
    const alpha = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: alpha-build\n  run: echo alpha'), '.vscode/settings.json': WORKSPACE_SETTINGS });
    const beta = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: beta-build\n  run: echo beta'), '.vscode/settings.json': WORKSPACE_SETTINGS });
    const extensionsDir = extensionsDirWithCheckout();
    const wsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-ui-workspace-'));
    const wsFile = path.join(wsDir, 'two.code-workspace');
    fs.writeFileSync(wsFile, JSON.stringify({ folders: [{ path: alpha.dir }, { path: beta.dir }] }));
    cleanup.push(
      () => alpha.dispose(),
      () => beta.dispose(),
      () => fs.rmSync(wsDir, { recursive: true, force: true }),
      () => fs.rmSync(extensionsDir, { recursive: true, force: true }),
    );
    const server = await startCodeServer({ folder: alpha.dir, extensionsDir });
    try {
      // Straight into the multi-root workspace: opening a folder first would start a second
      // extension host that races the first over that folder's agent.
      const { page, close } = await openWorkbench(server, { workspace: wsFile });
      try {
        await openConveyorView(page);
        const alphaName = path.basename(alpha.dir);
        const betaName = path.basename(beta.dir);
        await waitFor(async () => {
          const r = await treeRows(page);
          return r.includes(`Folder ${alphaName}: agent connected`) && r.includes(`Folder ${betaName}: agent connected`);
        }, 'both folders connected to their agents');
        for (const repo of [alpha, beta]) assert.ok(fs.existsSync(path.join(repo.dir, '.conveyor', 'agent.json')), `an agent for ${repo.dir}`);

        await runCommandFromPalette(page, 'Conveyor: Run Pipeline');
        const input = page.locator('.quick-input-widget input.input');
        await page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: betaName }).first().waitFor({ state: 'visible', timeout: 15_000 });
        await input.fill(betaName);
        await page.keyboard.press('Enter');
        const rows = await waitFor(async () => {
          const r = await treeRows(page);
          return r.some((l) => l.startsWith('Stage beta-build: succeeded')) && r.some((l) => l.startsWith('Run #1 succeeded')) ? r : undefined;
        }, 'the run of the second folder to succeed');
        const folderAt = rows.indexOf(`Folder ${betaName}: agent connected`);
        assert.ok(folderAt >= 0 && rows[folderAt + 1]?.startsWith('Run #1 succeeded'), `the run is under its folder: ${JSON.stringify(rows)}`);
        assert.ok(rows.slice(0, folderAt).every((l) => !l.startsWith('Run #')), 'the first folder has no run');
        await screenshot(page, 'vscode-ui-multi-root.png');
      } finally {
        await close();
      }
    } finally {
      await server.stop();
    }
  });

  it('with conveyor.agent.autoStart off: the views and the status bar offer Start Agent, which starts it', async function () {
    const repo = new TempRepo({
      'conveyor.yml': pipelineYaml('- name: build\n  run: echo hi'),
      '.vscode/settings.json': JSON.stringify({ 'conveyor.runOnCommit': false, 'conveyor.agent.autoStart': false }),
    });
    const extensionsDir = extensionsDirWithCheckout();
    cleanup.push(
      () => repo.dispose(),
      () => fs.rmSync(extensionsDir, { recursive: true, force: true }),
    );
    const server = await startCodeServer({ folder: repo.dir, extensionsDir });
    try {
      const { page, close } = await openWorkbench(server, { folder: repo.dir });
      try {
        await openConveyorView(page);
        await page.getByText('The Conveyor agent is not running').first().waitFor({ state: 'visible', timeout: 90_000 });
        const status = page.locator('.part.statusbar .statusbar-item', { hasText: 'Conveyor agent offline' }).first();
        await status.waitFor({ state: 'visible', timeout: 30_000 });
        assert.equal(fs.existsSync(path.join(repo.dir, '.conveyor', 'agent.json')), false, 'no agent started by itself');
        await screenshot(page, 'vscode-ui-agent-offline.png');
        await page.locator('.welcome-view-content .monaco-button', { hasText: 'Start Agent' }).first().click();
        await page.getByText('No runs yet').first().waitFor({ state: 'visible', timeout: 60_000 });
        assert.ok(fs.existsSync(path.join(repo.dir, '.conveyor', 'agent.json')), 'Start Agent started it');
        await page.locator('.part.statusbar .statusbar-item', { hasText: 'Conveyor' }).filter({ hasText: /^((?!offline).)*$/ }).first().waitFor({ state: 'visible', timeout: 30_000 });
      } finally {
        await close();
      }
    } finally {
      await server.stop();
    }
  });

  it('in Restricted Mode starts no agent, says why, and starts once the workspace is trusted', async function () {
    const repo = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: build\n  run: echo hi'), '.vscode/settings.json': WORKSPACE_SETTINGS });
    const extensionsDir = extensionsDirWithCheckout();
    cleanup.push(
      () => repo.dispose(),
      () => fs.rmSync(extensionsDir, { recursive: true, force: true }),
    );
    const server = await startCodeServer({
      folder: repo.dir,
      extensionsDir,
      trustWorkspace: false,
      settings: { 'security.workspace.trust.startupPrompt': 'never', 'security.workspace.trust.banner': 'never' },
    });
    try {
      const { page, close } = await openWorkbench(server, { folder: repo.dir });
      try {
        await openConveyorView(page);
        await page.getByText('Conveyor is in Restricted Mode').first().waitFor({ state: 'visible', timeout: 90_000 });
        await runCommandFromPalette(page, 'Conveyor: Run Pipeline');
        const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'Restricted Mode' }).first();
        await toast.waitFor({ state: 'visible', timeout: 30_000 });
        assert.match(await toast.innerText(), /Conveyor cannot run the pipeline in Restricted Mode: pipelines run the commands in conveyor.yml/);
        await screenshot(page, 'vscode-ui-restricted.png');
        // The command ran (the message proves it), and no agent was started.
        assert.equal(fs.existsSync(path.join(repo.dir, '.conveyor')), false, 'no .conveyor folder: no agent ran');

        // Trusting the workspace starts the agent.
        await toast.locator('a.monaco-button, .monaco-button', { hasText: 'Manage Workspace Trust' }).first().click();
        const trust = page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust$/ }).first();
        await trust.waitFor({ state: 'visible', timeout: 30_000 });
        await trust.click();
        await waitFor(async () => fs.existsSync(path.join(repo.dir, '.conveyor', 'agent.json')), 'the agent to start once trusted', 60_000);
      } finally {
        await close();
      }
    } finally {
      await server.stop();
    }
  });
});
