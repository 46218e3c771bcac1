/**
 * Test harness for the VS Code extension: a real VS Code (code-server 4.100.3, VS Code 1.100.3)
 * started offline from the test cache, driven by headless Debian chromium through playwright-core.
 *
 * - startCodeServer: a code-server on a free loopback port, isolated in its own run folder.
 * - runExtensionTests: runs a mocha suite inside the real extension host (like VS Code's
 *   --extensionDevelopmentPath / --extensionTestsPath) and returns its exit code and output.
 * - openWorkbench / runCommandFromPalette / waitForWorkbench / screenshot: UI checks.
 *
 * Provisioning (chromium, code-server) is done by test/provision.sh.
 *
 * Clean-up: code-server runs in its own process group under a watchdog that kills the group when
 * the test process goes away, even killed outright; stop() ends the group and any process naming
 * the run folder, then removes the folder. Chromium exits with its playwright pipe. Run folders
 * (in the OS temp folder) of test processes that died are removed by the next start.
 * CONVEYOR_KEEP_TEST_RUNS=1 keeps run folders (server.log, user data) for debugging.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as util from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CODE_SERVER_VERSION = '4.100.3';
/** The VS Code release inside that code-server. */
export const VSCODE_VERSION = '1.100.3';

export interface CodeServer {
  url: string;
  port: number;
  runDir: string;
  stop(): Promise<void>;
}

export interface StartCodeServerOptions {
  /** Folder the workbench opens. */
  folder: string;
  /** Extensions folder; default: a fresh one inside the run folder. */
  extensionsDir?: string;
  /** Trust the workspace (workspace trust off); default true. */
  trustWorkspace?: boolean;
  /** User settings, merged over the harness defaults. */
  settings?: Record<string, unknown>;
  /** Extra environment for code-server; its extension host inherits it. */
  env?: Record<string, string>;
}

export interface RunExtensionTestsOptions {
  /** Folder of the extension under development (its package.json). */
  extensionDevelopmentPath: string;
  /** CommonJS module exporting `run(): Promise<void>`, loaded in the extension host. */
  extensionTestsPath: string;
  /** Workspace folder opened for the run. */
  folder: string;
  env?: Record<string, string>;
  /** Bound for the whole run, code-server start included; default 5 minutes. */
  timeoutMs?: number;
  /** Screenshot of the workbench at the end of the run; relative paths are inside test-output/. */
  screenshotPath?: string;
}

export interface ExtensionTestsResult {
  exitCode: number;
  output: string;
}

/** Error of a run that did not finish; `output` holds what the suite logged so far. */
export class ExtensionTestsError extends Error {
  constructor(message: string, readonly output: string, readonly serverLog: string) {
    super(message);
    this.name = 'ExtensionTestsError';
  }
}

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-proxy-server',
  '--password-store=basic',
  '--use-mock-keychain',
];

const DEFAULT_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
};

/** Lines the workbench logs on every offline run; they are not part of a suite's output. */
const LOG_NOISE = [
  /^Creating a socket/,
  /^Resolv/,
  /^Updating additional/,
  /^\[Service Worker\]/,
  /^ChatSessionStore/,
  /ENOTFOUND open-vsx\.org/,
  /^\[Extension Host\] Debugger (attached|listening)/,
];

// ---------------------------------------------------------------------------------------------
// Locations

/** The folder holding provisioned test components (see test/provision.sh). */
export function testCacheDir(): string {
  return process.env.CONVEYOR_TEST_CACHE || path.join(os.homedir(), '.cache', 'conveyor-test');
}

/** Path of code-server's entry.js in the test cache. */
export function codeServerEntry(): string {
  const entry = path.join(testCacheDir(), `code-server-${CODE_SERVER_VERSION}`, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  if (!fs.existsSync(entry)) {
    throw new Error(
      `code-server ${CODE_SERVER_VERSION} is not installed (missing ${entry}). ` +
        'Run `bash test/provision.sh` (test/setup/30-code-server.sh installs it).',
    );
  }
  return entry;
}

/** Path of the chromium the UI tests drive. */
export function chromiumPath(): string {
  const exe = process.env.CONVEYOR_CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(exe)) {
    throw new Error(`chromium is not installed (missing ${exe}). Run \`bash test/provision.sh\` (test/setup/20-chromium.sh installs it).`);
  }
  return exe;
}

/** The checkout's root: the nearest folder above this file holding test/provision.sh. */
export function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'test', 'provision.sh')) && fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no checkout root above ${__dirname}`);
  }
}

/** test-output/ at the checkout's root (git-ignored), created on demand. */
export function testOutputDir(): string {
  const dir = path.join(repoRoot(), 'test-output');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface ServerState {
  child: ChildProcess;
  runDir: string;
  exited: Promise<number | null>;
  browsers: Set<BrowserContext>;
  stopping?: Promise<void>;
}

const live = new Set<ServerState>();
const states = new WeakMap<CodeServer, ServerState>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when a test process ends without stopping its servers (mocha --exit, a crash).
  process.on('exit', () => {
    for (const state of live) {
      try {
        killTree(state, 'SIGKILL');
        if (!keepRunDirs()) fs.rmSync(state.runDir, { recursive: true, force: true, maxRetries: 2 });
      } catch {
        // the next start removes a folder left here
      }
    }
  });
}

function keepRunDirs(): boolean {
  return process.env.CONVEYOR_KEEP_TEST_RUNS === '1';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readProc(pid: string, file: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'latin1');
  } catch {
    return '';
  }
}

/**
 * Pids of the processes that belong to a run: descendants of its server and any process whose
 * command line or environment names its run folder (chromium profiles, processes that left the
 * process group such as terminals).
 */
function runProcesses(state: ServerState): number[] {
  const found = new Set<number>();
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const stat = readProc(name, 'stat');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    if (readProc(name, 'cmdline').includes(state.runDir) || readProc(name, 'environ').includes(state.runDir)) found.add(pid);
  }
  const queue = state.child.pid ? [state.child.pid] : [];
  while (queue.length) {
    const pid = queue.shift()!;
    found.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return [...found];
}

function killTree(state: ServerState, signal: NodeJS.Signals): number[] {
  const pids = runProcesses(state);
  if (state.child.pid) {
    try {
      process.kill(-state.child.pid, signal);
    } catch {
      // group already gone
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
  return pids;
}

function groupAlive(state: ServerState): boolean {
  if (!state.child.pid) return false;
  try {
    process.kill(-state.child.pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopServer(state: ServerState, removeRunDir = !keepRunDirs()): Promise<void> {
  await Promise.all([...state.browsers].map((b) => closeBrowser(b)));
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = killTree(state, signal);
    const deadline = Date.now() + (signal === 'SIGTERM' ? 5000 : 3000);
    while (Date.now() < deadline && (groupAlive(state) || pids.some(alive))) await sleep(100);
    if (!groupAlive(state) && !pids.some(alive) && runProcesses(state).filter(alive).length === 0) break;
  }
  await state.exited;
  live.delete(state);
  if (removeRunDir) await fs.promises.rm(state.runDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}

const RUN_DIR_PREFIX = 'conveyor-vscode-';
const OWNER_FILE = 'owner.pid';

/** Removes run folders left by test processes that were killed before they could clean up. */
function removeStaleRunDirs(): void {
  if (keepRunDirs()) return;
  let names: string[] = [];
  try {
    names = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(RUN_DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = path.join(os.tmpdir(), name);
    let owner = NaN;
    try {
      owner = Number(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8'));
    } catch {
      continue; // being created, or not a run folder
    }
    if (owner > 0 && owner !== process.pid && !alive(owner)) fs.rmSync(dir, { recursive: true, force: true });
  }
}

function tail(file: string, max = 6000): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.length > max ? '...' + text.slice(-max) : text;
  } catch {
    return '';
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The parent's environment minus what would make code-server act as a client of another VS Code. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (/^(VSCODE_|CODE_SERVER_|ELECTRON_)/.test(key)) continue;
    if (['PASSWORD', 'HASHED_PASSWORD', 'PORT', 'GITHUB_TOKEN', 'NODE_OPTIONS'].includes(key)) continue;
    env[key] = value;
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// code-server

/**
 * Runs code-server (argv after -e) as its child and kills their whole process group when the test
 * process goes away, however it ends: its end of the stdin pipe closes then. Signals sent to the
 * group reach code-server directly; the watchdog exits with it.
 */
const WATCHDOG = `
const { spawn } = require('child_process');
const server = spawn(process.execPath, process.argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
server.on('exit', (code, signal) => process.exit(code === null ? 1 : code));
const killGroup = () => { try { process.kill(0, 'SIGKILL'); } catch {} process.exit(1); };
process.stdin.on('end', killGroup);
process.stdin.on('error', killGroup);
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => {});
`;

/**
 * Starts code-server on a free 127.0.0.1 port with a fresh run folder (user data, extensions dir,
 * XDG_* and TMPDIR all inside it), --auth none, workspace trust per opts, pre-seeded settings;
 * waits for /healthz.
 */
export async function startCodeServer(opts: StartCodeServerOptions): Promise<CodeServer> {
  const entry = codeServerEntry();
  const folder = path.resolve(opts.folder);
  if (!fs.statSync(folder, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`workspace folder ${folder} does not exist`);
  const trust = opts.trustWorkspace ?? true;

  removeStaleRunDirs();
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), RUN_DIR_PREFIX));
  fs.writeFileSync(path.join(runDir, OWNER_FILE), String(process.pid));
  const dirs = {
    userData: path.join(runDir, 'user-data'),
    extensions: opts.extensionsDir ? path.resolve(opts.extensionsDir) : path.join(runDir, 'extensions'),
    config: path.join(runDir, 'xdg', 'config'),
    data: path.join(runDir, 'xdg', 'data'),
    cache: path.join(runDir, 'xdg', 'cache'),
    runtime: path.join(runDir, 'xdg', 'runtime'),
    tmp: path.join(runDir, 'tmp'),
  };
  for (const dir of Object.values(dirs)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(dirs.userData, 'User'), { recursive: true });
  const settings = { ...DEFAULT_SETTINGS, 'security.workspace.trust.enabled': !trust, ...opts.settings };
  fs.writeFileSync(path.join(dirs.userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  const configFile = path.join(runDir, 'config.yaml');
  const logFile = path.join(runDir, 'server.log');

  const env: Record<string, string> = {
    ...baseEnv(),
    XDG_CONFIG_HOME: dirs.config,
    XDG_DATA_HOME: dirs.data,
    XDG_CACHE_HOME: dirs.cache,
    XDG_RUNTIME_DIR: dirs.runtime,
    TMPDIR: dirs.tmp,
    ...opts.env,
  };

  installExitHook();
  let lastError = '';
  // A port found free can be taken before code-server binds it: retry on another one.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    fs.writeFileSync(configFile, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
    const args = [
      entry,
      '--bind-addr', `127.0.0.1:${port}`,
      '--auth', 'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-getting-started-override',
      '--config', configFile,
      '--user-data-dir', dirs.userData,
      '--extensions-dir', dirs.extensions,
      ...(trust ? ['--disable-workspace-trust'] : []),
      folder,
    ];
    const log = fs.openSync(logFile, 'a');
    fs.writeSync(log, `--- code-server ${CODE_SERVER_VERSION} on port ${port} (attempt ${attempt})\n`);
    let child: ChildProcess;
    try {
      // The watchdog leads a new process group holding code-server and everything it starts.
      child = spawn(process.execPath, ['-e', WATCHDOG, ...args], { cwd: runDir, env, detached: true, stdio: ['pipe', log, log] });
    } finally {
      fs.closeSync(log);
    }
    // Neither the server nor its watchdog pipe keeps the test process alive on its own.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    const state: ServerState = {
      child,
      runDir,
      browsers: new Set(),
      exited: new Promise((resolve) => {
        child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)));
        child.once('error', () => resolve(-1));
      }),
    };
    live.add(state);

    const url = `http://127.0.0.1:${port}`;
    let exitCode: number | null | undefined;
    void state.exited.then((code) => (exitCode = code));
    const deadline = Date.now() + 90_000;
    let healthy = false;
    while (Date.now() < deadline && exitCode === undefined) {
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
        if (res.ok) {
          healthy = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(150);
    }
    if (healthy) {
      const server: CodeServer = {
        url,
        port,
        runDir,
        stop: () => (state.stopping ??= stopServer(state)),
      };
      states.set(server, state);
      return server;
    }
    const logText = tail(logFile);
    lastError = exitCode === undefined ? `code-server did not answer ${url}/healthz within 90 s` : `code-server exited with ${exitCode} before answering`;
    // The run folder is kept while retrying on another port and removed on the last failure.
    const retry = attempt < 3 && /EADDRINUSE/.test(logText);
    await stopServer(state, !retry && !keepRunDirs()).catch(() => undefined);
    if (!retry) throw new Error(`${lastError}\n--- server log (${logFile})\n${logText}`);
  }
  throw new Error(lastError);
}

// ---------------------------------------------------------------------------------------------
// Browser

let profileCounter = 0;

async function launchBrowser(state: ServerState): Promise<BrowserContext> {
  const profile = path.join(state.runDir, `chromium-${++profileCounter}`);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
    // A signal ends the test process at once; chromium then exits with its closed pipe and the
    // code-server watchdog with its closed stdin. (Playwright's handlers would only close the browser.)
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    artifactsDir: path.join(profile, 'artifacts'),
    viewport: { width: 1400, height: 900 },
    env: {
      ...baseEnv(),
      TMPDIR: path.join(state.runDir, 'tmp'),
      XDG_CONFIG_HOME: path.join(state.runDir, 'xdg', 'config'),
      XDG_CACHE_HOME: path.join(state.runDir, 'xdg', 'cache'),
      XDG_DATA_HOME: path.join(state.runDir, 'xdg', 'data'),
    },
  });
  state.browsers.add(context);
  context.once('close', () => state.browsers.delete(context));
  return context;
}

async function closeBrowser(context: BrowserContext): Promise<void> {
  await Promise.race([context.close().catch(() => undefined), sleep(15_000)]);
}

function stateOf(server: CodeServer): ServerState {
  const state = states.get(server);
  if (!state) throw new Error('not a server started by startCodeServer');
  return state;
}

function workbenchUrl(server: CodeServer, folder?: string, payload?: [string, string][], workspace?: string): string {
  const query: string[] = [];
  if (workspace) query.push(`workspace=${encodeURIComponent(path.resolve(workspace))}`);
  else if (folder) query.push(`folder=${encodeURIComponent(path.resolve(folder))}`);
  if (payload) query.push(`payload=${encodeURIComponent(JSON.stringify(payload))}`);
  return `${server.url}/${query.length ? '?' + query.join('&') : ''}`;
}

/**
 * Opens the workbench in headless chromium for UI checks, on a folder or a .code-workspace file
 * (multi-root); returns the Playwright page and a close() that closes the browser.
 */
export async function openWorkbench(server: CodeServer, opts?: { folder?: string; workspace?: string }): Promise<{ page: Page; close(): Promise<void> }> {
  const state = stateOf(server);
  const context = await launchBrowser(state);
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(workbenchUrl(server, opts?.folder, undefined, opts?.workspace), { waitUntil: 'domcontentloaded', timeout: 60_000 });
    await waitForWorkbench(page);
    return { page, close: () => closeBrowser(context) };
  } catch (err) {
    await closeBrowser(context);
    throw err;
  }
}

/** Waits until the workbench has rendered its parts and connected to its extension host. */
export async function waitForWorkbench(page: Page, timeoutMs = 90_000): Promise<void> {
  await page.waitForSelector('.monaco-workbench .part.statusbar', { state: 'visible', timeout: timeoutMs });
  await page.waitForSelector('.monaco-workbench .part.activitybar', { state: 'visible', timeout: timeoutMs });
  // The remote indicator turns from "Opening Remote..." to the host once the server is connected.
  await page
    .waitForFunction(
      // Evaluated in the page (no DOM types in this project's compiler settings).
      `(() => {
        const el = document.getElementById('status.host');
        return !el || !/Opening Remote|Reconnecting|Disconnected/i.test(el.textContent || '');
      })()`,
      undefined,
      { timeout: timeoutMs },
    )
    .catch(() => undefined);
}

/**
 * Runs a command from the command palette by its title as the palette shows it
 * ("Category: Title" for commands with a category). While the command is not listed yet
 * (extensions still registering after the workbench appears) the query is typed again, for up to
 * a minute.
 */
export async function runCommandFromPalette(page: Page, title: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  const widget = page.locator('.quick-input-widget');
  const input = widget.locator('input.input');
  const exact = new RegExp(`^\\s*${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  const rows = widget.locator('.quick-input-list .monaco-list-row');
  const row = rows.filter({ has: page.locator('.label-name', { hasText: exact }) }).first();
  for (;;) {
    if (!(await input.isVisible())) {
      await page.locator('.monaco-workbench .part.editor').click({ position: { x: 10, y: 10 } }).catch(() => undefined);
      await page.keyboard.press('F1');
      await input.waitFor({ state: 'visible', timeout: 15_000 });
    }
    // The palette lists the commands known when its query changes: change it to ask again.
    await input.fill('>');
    await input.fill(`>${title}`);
    try {
      await row.waitFor({ state: 'visible', timeout: 2000 });
    } catch (err) {
      if (Date.now() < deadline) continue;
      const shown = await rows.evaluateAll((els) => els.map((el) => el.getAttribute('aria-label'))).catch(() => []);
      await page.keyboard.press('Escape').catch(() => undefined);
      throw new Error(`command "${title}" not found in the command palette; it listed: ${JSON.stringify(shown)} (${(err as Error).message})`);
    }
    await row.click();
    // The palette closes, unless the command opens a quick pick of its own.
    await widget.waitFor({ state: 'hidden', timeout: 5000 }).catch(() => undefined);
    return;
  }
}

/** Saves a screenshot of the page; relative paths are inside test-output/. Returns the file's path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.isAbsolute(name) ? name : path.join(testOutputDir(), name.endsWith('.png') ? name : `${name}.png`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file });
  return file;
}

// ---------------------------------------------------------------------------------------------
// Extension tests

function formatLog(args: unknown): string | undefined {
  const text = util.format(...(Array.isArray(args) ? args : [args]));
  return LOG_NOISE.some((re) => re.test(text)) ? undefined : text;
}

/**
 * Runs a mocha suite inside the real extension host (the extensionDevelopmentPath /
 * extensionTestsPath payload), through headless Debian chromium with playwright-core. Resolves
 * with the suite's exit code and its console output. Bounded by opts.timeoutMs (default 5 min):
 * on time-out it rejects with the collected output. Always closes the browser and stops
 * code-server.
 */
export async function runExtensionTests(opts: RunExtensionTestsOptions): Promise<ExtensionTestsResult> {
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const extensionDir = path.resolve(opts.extensionDevelopmentPath);
  const testsFile = path.resolve(opts.extensionTestsPath);
  if (!fs.existsSync(path.join(extensionDir, 'package.json'))) throw new Error(`no package.json in ${extensionDir}`);
  if (!fs.existsSync(testsFile)) throw new Error(`extension tests entry ${testsFile} does not exist`);

  const lines: string[] = [];
  const output = () => lines.join('\n');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`extension tests did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  timedOut.catch(() => undefined);
  const bounded = <T>(p: Promise<T>) => Promise.race([p, timedOut]);

  const starting = startCodeServer({ folder: opts.folder, env: opts.env });
  let server: CodeServer | undefined;
  let browser: Promise<BrowserContext> | undefined;
  let page: Page | undefined;
  try {
    server = await bounded(starting);
    const state = stateOf(server);
    browser = launchBrowser(state);
    const context = await bounded(browser);
    page = context.pages()[0] ?? (await bounded(context.newPage()));

    let finish!: (code: number) => void;
    const exited = new Promise<number>((resolve) => (finish = resolve));
    await page.exposeFunction('codeAutomationLog', (_type: unknown, args: unknown) => {
      const line = formatLog(args);
      if (line !== undefined) lines.push(line);
    });
    await page.exposeFunction('codeAutomationExit', (code: unknown) => finish(Number(code)));
    const failed = new Promise<never>((_, reject) => {
      page!.once('crash', () => reject(new Error('the workbench page crashed')));
      page!.once('close', () => reject(new Error('the workbench page was closed')));
      void state.exited.then((code) => reject(new Error(`code-server exited with ${code} during the run`)));
    });
    failed.catch(() => undefined);

    const authority = `127.0.0.1:${server.port}`;
    const payload: [string, string][] = [
      ['extensionDevelopmentPath', `vscode-remote://${authority}${extensionDir}`],
      ['extensionTestsPath', `vscode-remote://${authority}${testsFile}`],
    ];
    await bounded(Promise.race([page.goto(workbenchUrl(server, opts.folder, payload), { waitUntil: 'domcontentloaded', timeout: 0 }), failed]));
    const exitCode = await bounded(Promise.race([exited, failed]));
    if (opts.screenshotPath) await screenshot(page, opts.screenshotPath).catch(() => undefined);
    return { exitCode, output: output() };
  } catch (err) {
    if (opts.screenshotPath && page) await Promise.race([screenshot(page, opts.screenshotPath).catch(() => undefined), sleep(10_000)]);
    const serverLog = server ? tail(path.join(server.runDir, 'server.log')) : '';
    const message = `${(err as Error).message}\n--- extension host output\n${output()}${serverLog ? `\n--- server log\n${serverLog}` : ''}`;
    throw new ExtensionTestsError(message, output(), serverLog);
  } finally {
    clearTimeout(timer);
    // Launches and starts still in flight settle on their own bounds; stop what they started.
    if (browser) await browser.then(closeBrowser, () => undefined);
    server ??= await starting.catch(() => undefined);
    await server?.stop();
  }
}
