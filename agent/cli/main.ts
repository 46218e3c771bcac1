#!/usr/bin/env node
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, AgentRunningError, isAlive, VERSION } from '../agent';
import { formatDiagnosticLine, formatDiagnosticPretty, loadConfig } from '../config';
import type { ApprovalInfo, DeploymentInfo, EnvironmentStatus, PreviewInfo, RunDetail, RunSummary, SequencedEvent, StageTestResults, StateView, SyncInfo, SyncResult, Alert } from '../protocol';
import { FINISHED_RUN_STATUSES } from '../protocol';
import { dashboardUrl } from '../server/dashboard';
import { setUnexpectedErrorHandler } from '../util/lifecycle';
import { AgentClient, AgentHttpError, AgentUnavailableError, connect, connectOrStart, findWorkspace, readDiscovery } from './client';
import { paint, runLine, stageLine, table, ago, duration, shortSha, statusWord, truncate, type Style } from './render';

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failed: 1, usage: 2, agent: 3 } as const;

class UsageError extends Error {}

const HELP = `conveyor ${VERSION}: continuous delivery from your editor and terminal

Usage: conveyor <command> [options]

Commands:
  run [--stage S]... [--commit REV | --working-tree] [--detach]
                         start a run of the pipeline and follow it
  status [RUN]           the agent and the latest run, or one run
  logs RUN [--stage S] [--follow]
                         the logs of a run
  cancel RUN             cancel a queued or running run
  rerun RUN              run the same commit and stages again
  history [--limit N]    past runs, newest first
  validate               check conveyor.yml and print each problem as file:line:col
  envs                   environments: live release, health, releases, pending approvals
  deploy ENV [--run RUN] deploy a run's artifact to an environment (default: the latest one)
  promote ENV --from ENV deploy the live release of one environment to another
  approve ID [--reason T] / reject ID [--reason T]
                         decide a pending approval (conveyor envs lists them)
  rollback ENV [--to N]  deploy an earlier release again (default: the one before the live one)
  preview create --branch B [--template T] | preview destroy NAME | preview list
                         preview environments: one per branch, from a template
  drift ENV              the desired state in git against the live state, and what differs
  sync ENV [--dry-run]   apply the desired state in git now (--dry-run: say what would change)
  reconcile pause ENV | reconcile resume ENV
                         stop or restart applying git and healing drift for an environment
  alerts [--all] | alerts snooze ID [--for 1h] | alerts resolve ID
                         alerts that fired (open and snoozed; --all: resolved too)
  dashboard [--no-open]  the Run, Metrics and Timeline pages in a browser: prints their address
                         (it signs the browser in) and opens it when there is a display
  agent                  run the agent in the foreground (other commands start it in the background)
  stop                   stop the background agent

Options:
  -C, --workspace DIR    the folder with conveyor.yml (default: the nearest one upward)
  --json                 machine-readable output (run, status, history, logs, validate)
  -h, --help             this help
  -v, --version          the version

Exit codes: 0 success, 1 the pipeline failed, 2 usage or config error, 3 agent unavailable.
`;

interface Common {
  workspace?: string;
  json: boolean;
  style: Style;
  out: (s: string) => void;
  err: (s: string) => void;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const style: Style = { color: !!process.stdout.isTTY && !process.env.NO_COLOR };
  const base: Common = {
    json: false,
    style,
    out: (s) => process.stdout.write(s + '\n'),
    err: (s) => process.stderr.write(s + '\n'),
  };
  try {
    switch (command) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        base.out(HELP);
        return command === undefined ? EXIT.usage : EXIT.ok;
      case '-v':
      case '--version':
        base.out(VERSION);
        return EXIT.ok;
      case 'agent':
        return await cmdAgent(rest);
      case 'run':
        return await cmdRun(rest, base);
      case 'rerun':
        return await cmdRerun(rest, base);
      case 'status':
        return await cmdStatus(rest, base);
      case 'logs':
        return await cmdLogs(rest, base);
      case 'cancel':
        return await cmdCancel(rest, base);
      case 'history':
        return await cmdHistory(rest, base);
      case 'validate':
        return await cmdValidate(rest, base);
      case 'stop':
        return await cmdStop(rest, base);
      case 'envs':
        return await cmdEnvs(rest, base);
      case 'preview':
        return await cmdPreview(rest, base);
      case 'deploy':
        return await cmdDeploy(rest, base);
      case 'promote':
        return await cmdPromote(rest, base);
      case 'rollback':
        return await cmdRollback(rest, base);
      case 'approve':
      case 'reject':
        return await cmdDecide(command, rest, base);
      case 'drift':
        return await cmdDrift(rest, base);
      case 'sync':
        return await cmdSync(rest, base);
      case 'reconcile':
        return await cmdReconcile(rest, base);
      case 'alerts':
        return await cmdAlerts(rest, base);
      case 'dashboard':
        return await cmdDashboard(rest, base);
      default:
        throw new UsageError(`unknown command "${command}"; see "conveyor --help"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      base.err(`conveyor: ${e.message}`);
      return EXIT.usage;
    }
    if (e instanceof AgentHttpError) {
      base.err(`conveyor: ${e.body.error}`);
      if (e.body.diagnostics) for (const d of e.body.diagnostics) base.err(formatDiagnosticLine(d));
      if (e.body.fix) base.err(`  fix: ${e.body.fix}`);
      return e.status >= 400 && e.status < 500 && e.status !== 401 && e.status !== 403 ? EXIT.usage : EXIT.agent;
    }
    if (e instanceof AgentUnavailableError || e instanceof AgentRunningError) {
      base.err(`conveyor: ${e.message}`);
      return EXIT.agent;
    }
    const err = e as Error & { code?: string };
    if (err?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || err?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      base.err(`conveyor: ${err.message}; see "conveyor --help"`);
      return EXIT.usage;
    }
    base.err(`conveyor: internal error: ${err?.stack ?? String(e)}`);
    return EXIT.agent;
  }
}

const COMMON_OPTIONS = {
  workspace: { type: 'string', short: 'C' },
  json: { type: 'boolean', default: false },
} as const;

function workspaceOf(given: string | undefined): string {
  if (given) {
    const dir = path.resolve(given);
    if (!fs.existsSync(dir)) throw new UsageError(`no folder ${dir}`);
    return dir;
  }
  const found = findWorkspace(process.cwd());
  if (!found) throw new UsageError('no conveyor.yml here or in any parent folder; write one (see README) or pass --workspace DIR');
  return found;
}

function runId(text: string | undefined): number {
  if (!text) throw new UsageError('name a run: its number, as "conveyor history" lists it');
  const m = /^#?(\d{1,15})$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is not a run number`);
  return Number(m[1]);
}

async function cmdAgent(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      workspace: { type: 'string', short: 'C' },
      port: { type: 'string' },
      'no-commit-trigger': { type: 'boolean', default: false },
      'no-watch': { type: 'boolean', default: false },
      'poll-ms': { type: 'string' },
    },
  });
  const workspace = values.workspace ? path.resolve(values.workspace) : findWorkspace(process.cwd()) ?? process.cwd();
  const log = (msg: string) => process.stderr.write(`[${new Date().toISOString()}] ${msg}\n`);
  setUnexpectedErrorHandler((e) => log(`unexpected: ${(e as Error)?.stack ?? String(e)}`));
  process.on('uncaughtException', (e) => log(`uncaught: ${e.stack ?? e.message}`));
  process.on('unhandledRejection', (e) => log(`unhandled rejection: ${(e as Error)?.stack ?? String(e)}`));
  const port = values.port ? Number(values.port) : 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, not "${values.port}"`);
  let agent: Agent;
  try {
    agent = await Agent.start({
      workspace,
      port,
      commitTrigger: !values['no-commit-trigger'],
      watch: !values['no-watch'],
      pollMs: values['poll-ms'] ? Number(values['poll-ms']) : undefined,
      shuffle: process.env.CONVEYOR_SHUFFLE === '1',
    });
  } catch (e) {
    if (e instanceof AgentRunningError) {
      log(e.message);
      return EXIT.agent;
    }
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      log(`port ${port} is in use; pick another with --port, or leave it out to take a free one`);
      return EXIT.usage;
    }
    throw e;
  }
  log(`conveyor agent ${VERSION} (pid ${process.pid}) serving ${agent.workspace} on http://127.0.0.1:${agent.port}`);
  const sqlite = agent.store.engine;
  log(`history: ${path.join(agent.conveyorDir, 'history.db')} on SQLite ${sqlite.sqliteVersion} (${sqlite.name} engine${sqlite.nativeError ? `; the native one did not load: ${sqlite.nativeError}` : ''})`);
  const cfg = agent.config();
  if (!cfg.valid) log(`conveyor.yml has problems; runs will not start until they are fixed:\n${cfg.diagnostics.map(formatDiagnosticLine).join('\n')}`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log(`${sig}: stopping`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await agent.stop();
  log('stopped');
  return EXIT.ok;
}

async function client(c: Common): Promise<AgentClient> {
  const ws = workspaceOf(c.workspace);
  const progress = (msg: string) => {
    if (!c.json) c.err(msg);
  };
  return connectOrStart(ws, progress);
}

async function cmdRun(args: string[], c: Common): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      stage: { type: 'string', multiple: true, short: 's' },
      commit: { type: 'string' },
      'working-tree': { type: 'boolean', default: false },
      detach: { type: 'boolean', default: false, short: 'd' },
    },
  });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const agent = await client(c);
  const since = (await agent.health()).lastSeq;
  const run = await agent.request<RunSummary>('POST', '/runs', {
    stages: values.stage,
    commit: values.commit,
    workingTree: values['working-tree'] || undefined,
    trigger: 'manual',
  });
  return followRun(agent, run, since, values.detach, c);
}

async function cmdRerun(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...COMMON_OPTIONS, detach: { type: 'boolean', default: false, short: 'd' } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const id = runId(positionals[0]);
  const agent = await client(c);
  const since = (await agent.health()).lastSeq;
  const run = await agent.request<RunSummary>('POST', `/runs/${id}/rerun`, { trigger: 'manual' });
  return followRun(agent, run, since, values.detach, c);
}

/** Prints a run's progress and logs as they happen; returns 0 if it succeeded, 1 if not. */
async function followRun(agent: AgentClient, run: RunSummary, since: number, detach: boolean, c: Common): Promise<number> {
  const { style } = c;
  if (!c.json) {
    c.out(`${paint(style, 'bold', `run #${run.id}`)} of ${run.pipeline} · ${run.commit ? `${shortSha(run.commit)}${run.branch ? ` (${run.branch})` : ''} ${run.title ? truncate(run.title, 60) : ''}` : 'working tree'}`);
    c.out(`stages: ${run.requestedStages.join(', ')}`);
  }
  if (detach) {
    if (c.json) c.out(JSON.stringify(run, null, 2));
    else c.out(`follow it with: conveyor logs ${run.id} --follow`);
    return EXIT.ok;
  }
  const partial = new Map<string, string>();
  const flushLines = (key: string, prefix: string, text: string, final: boolean) => {
    const buf = (partial.get(key) ?? '') + text;
    const lines = buf.split('\n');
    const keep = final ? '' : lines.pop()!;
    if (final && lines[lines.length - 1] === '') lines.pop();
    for (const line of lines) c.out(`${prefix}${line}`);
    partial.set(key, keep);
  };
  let finished: RunSummary | undefined;
  /** The counts of a report that comes in several events, until its last one. */
  const reports = new Map<string, { passed: number; failed: number; skipped: number; failures: string[] }>();
  await agent.follow(since, (e: SequencedEvent) => {
    if (c.json) {
      if (e.type === 'run.finished' && e.run.id === run.id) {
        finished = e.run;
        return true;
      }
      return;
    }
    switch (e.type) {
      case 'log':
        if (e.runId === run.id) flushLines(`${e.stage}/${e.attempt}/${e.step}`, paint(style, 'cyan', `${e.stage} │ `), e.text, false);
        break;
      case 'step.changed':
        if (e.step.runId === run.id && e.step.status === 'running') {
          c.out(paint(style, 'gray', `${e.step.stage} │ $ ${e.step.command.split('\n')[0]}`));
        } else if (e.step.runId === run.id && e.step.status !== 'pending') {
          flushLines(`${e.step.stage}/${e.step.attempt}/${e.step.index}`, paint(style, 'cyan', `${e.step.stage} │ `), '', true);
        }
        break;
      case 'stage.changed':
        if (e.stage.runId === run.id && e.stage.status !== 'pending') c.out(stageLine(style, e.stage));
        break;
      case 'tests.reported': {
        if (e.runId !== run.id) break;
        // A big report comes in several events: one line for the report once its last one is in.
        const key = `${e.stage}/${e.attempt}`;
        const all = reports.get(key) ?? { passed: 0, failed: 0, skipped: 0, failures: [] };
        reports.set(key, all);
        all.passed += e.passed;
        all.failed += e.failed;
        all.skipped += e.skipped;
        if (e.note) c.out(paint(style, 'yellow', `  ${e.stage}: ${e.note}`));
        for (const t of e.results.filter((r) => r.status === 'failed').slice(0, Math.max(0, 10 - all.failures.length))) {
          const where = t.location ? ` (${path.relative(process.cwd(), t.location.file)}:${t.location.line}:${t.location.column})` : '';
          all.failures.push(`    ✗ ${t.suite ? `${t.suite} › ` : ''}${t.name}${where}: ${(t.message ?? '').split('\n')[0]}`);
        }
        if (e.total !== undefined && (e.first ?? 0) + e.results.length < e.total) break;
        reports.delete(key);
        c.out(`  ${e.stage}: tests ${paint(style, 'green', `${all.passed} passed`)}, ${paint(style, all.failed ? 'red' : 'gray', `${all.failed} failed`)}, ${all.skipped} skipped`);
        for (const line of all.failures) c.out(line);
        break;
      }
      case 'report.unreadable':
        if (e.runId === run.id) c.out(paint(style, 'yellow', `  ${e.stage}: report unreadable: ${e.reason}`));
        break;
      case 'artifact.recorded':
        if (e.artifact.runId === run.id) c.out(`  ${e.artifact.stage}: artifact ${e.artifact.path} ${e.artifact.digest.slice(0, 19)}… (${e.artifact.size} bytes)`);
        break;
      case 'run.finished':
        if (e.run.id === run.id) {
          finished = e.run;
          return true;
        }
        break;
      default:
        break;
    }
    return;
  });
  const done = finished!;
  if (c.json) {
    c.out(JSON.stringify(await agent.request<RunDetail>('GET', `/runs/${run.id}`), null, 2));
  } else {
    c.out(`${paint(style, 'bold', `run #${done.id} ${statusWord(style, done.status)}`)} in ${duration(done.startedAt ?? done.queuedAt, done.finishedAt)}${done.reason ? `: ${done.reason}` : ''}`);
    c.out(`logs: conveyor logs ${done.id}   (files: ${path.join(agent.discovery.workspace, '.conveyor', 'logs', String(done.id))})`);
    c.out(`history: conveyor history   ·   API: http://127.0.0.1:${agent.discovery.port}/api/runs/${done.id}`);
  }
  return done.status === 'succeeded' ? EXIT.ok : EXIT.failed;
}

async function cmdStatus(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: COMMON_OPTIONS });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const agent = await client(c);
  if (positionals[0]) {
    const run = await agent.request<RunDetail>('GET', `/runs/${runId(positionals[0])}`);
    const tests = await agent.request<StageTestResults[]>('GET', `/runs/${run.id}/tests`);
    if (c.json) c.out(JSON.stringify({ ...run, tests }, null, 2));
    else printRun(run, tests, c);
    return run.status === 'failed' ? EXIT.failed : EXIT.ok;
  }
  const health = await agent.health();
  const latest = (await agent.request<RunSummary[]>('GET', '/runs?limit=1'))[0];
  const detail = latest ? await agent.request<RunDetail>('GET', `/runs/${latest.id}`) : undefined;
  if (c.json) {
    c.out(JSON.stringify({ agent: health, latestRun: detail ?? null }, null, 2));
    return EXIT.ok;
  }
  c.out(`agent ${health.version} · pid ${health.pid} · http://127.0.0.1:${agent.discovery.port} · up since ${ago(health.startedAt)}`);
  c.out(`workspace ${health.workspace} · conveyor.yml ${health.configValid ? 'valid' : paint(c.style, 'red', 'has problems (conveyor validate)')} · history on SQLite (${health.sqlite} engine)`);
  c.out(`active runs: ${health.activeRuns.length ? health.activeRuns.map((id) => `#${id}`).join(', ') : 'none'}`);
  if (detail) {
    c.out('');
    printRun(detail, [], c);
  } else {
    c.out('no runs yet: start one with "conveyor run"');
  }
  return EXIT.ok;
}

function printRun(run: RunDetail, tests: StageTestResults[], c: Common): void {
  c.out(runLine(c.style, run));
  if (run.reason) c.out(`  ${run.reason}`);
  for (const s of run.stages) c.out(`  ${stageLine(c.style, s)}`);
  for (const group of tests) {
    const failed = group.results.filter((r) => r.status === 'failed');
    c.out(`  ${group.stage}: ${group.results.length - failed.length} tests passed or skipped, ${failed.length} failed`);
    for (const t of failed.slice(0, 20)) c.out(`    ✗ ${t.suite ? `${t.suite} › ` : ''}${t.name}${t.location ? ` (${t.location.file}:${t.location.line})` : ''}`);
  }
  for (const a of run.artifacts) c.out(`  artifact ${a.stage}/${a.path} ${a.digest} ${a.size} bytes`);
}

async function cmdLogs(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...COMMON_OPTIONS, stage: { type: 'string', short: 's' }, follow: { type: 'boolean', short: 'f', default: false } },
  });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const id = runId(positionals[0]);
  const agent = await client(c);
  const run = await agent.request<RunDetail>('GET', `/runs/${id}`);
  if (values.stage && !run.stages.some((s) => s.name === values.stage)) {
    throw new UsageError(`run #${id} has no stage "${values.stage}" (stages: ${run.stages.map((s) => s.name).join(', ')})`);
  }
  if (values.follow && !FINISHED_RUN_STATUSES.includes(run.status)) {
    // Replay the run's events from its first one, then follow it live, until it finishes.
    let status = run.status;
    await agent.follow(run.firstSeq - 1, (e) => {
      if (e.type === 'log' && e.runId === id && (!values.stage || e.stage === values.stage)) {
        if (c.json) c.out(JSON.stringify(e));
        else process.stdout.write(e.text);
      }
      if (e.type === 'run.finished' && e.run.id === id) {
        status = e.run.status;
        return true;
      }
      return;
    });
    return status === 'succeeded' ? EXIT.ok : EXIT.failed;
  }
  const q = values.stage ? `?stage=${encodeURIComponent(values.stage)}` : '';
  const text = await agent.request<string>('GET', `/runs/${id}/logs${q}`);
  if (c.json) c.out(JSON.stringify({ runId: id, stage: values.stage ?? null, text }));
  else process.stdout.write(text);
  return EXIT.ok;
}

async function cmdCancel(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: COMMON_OPTIONS });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const id = runId(positionals[0]);
  const agent = await client(c);
  const run = await agent.request<RunSummary>('POST', `/runs/${id}/cancel`);
  if (c.json) c.out(JSON.stringify(run, null, 2));
  else if (FINISHED_RUN_STATUSES.includes(run.status)) c.out(`run #${id} had already ${run.status === 'succeeded' || run.status === 'failed' ? run.status : `been ${run.status}`}`);
  else c.out(`cancelling run #${id}…`);
  return EXIT.ok;
}

async function cmdHistory(args: string[], c: Common): Promise<number> {
  const { values } = parseArgs({ args, options: { ...COMMON_OPTIONS, limit: { type: 'string', short: 'n' } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const limit = values.limit ?? '20';
  if (!/^\d+$/.test(limit) || Number(limit) < 1 || Number(limit) > 500) throw new UsageError('--limit must be a number from 1 to 500');
  const agent = await client(c);
  const runs = await agent.request<RunSummary[]>('GET', `/runs?limit=${limit}`);
  if (c.json) {
    c.out(JSON.stringify(runs, null, 2));
    return EXIT.ok;
  }
  if (runs.length === 0) {
    c.out('no runs yet: start one with "conveyor run"');
    return EXIT.ok;
  }
  const rows = [['RUN', 'STATUS', 'TRIGGER', 'COMMIT', 'QUEUED', 'TOOK', 'TITLE']];
  for (const r of runs) {
    rows.push([
      `#${r.id}`,
      statusWord(c.style, r.status),
      r.trigger,
      shortSha(r.commit),
      ago(r.queuedAt),
      r.startedAt ? duration(r.startedAt, r.finishedAt) : '',
      truncate(r.title ?? '', 50),
    ]);
  }
  c.out(table(rows));
  return EXIT.ok;
}

async function cmdValidate(args: string[], c: Common): Promise<number> {
  const { values } = parseArgs({ args, options: COMMON_OPTIONS });
  const dir = values.workspace ? path.resolve(values.workspace) : findWorkspace(process.cwd()) ?? process.cwd();
  const state = await loadConfig(dir);
  if (values.json) {
    c.out(JSON.stringify(state, null, 2));
    return state.valid ? EXIT.ok : EXIT.usage;
  }
  let text = '';
  try {
    text = fs.readFileSync(state.file, 'utf8');
  } catch {
    text = '';
  }
  const rel = (d: (typeof state.diagnostics)[number]) => ({ ...d, file: path.relative(process.cwd(), d.file) || d.file });
  for (const d of state.diagnostics) {
    c.out(process.stdout.isTTY ? formatDiagnosticPretty(rel(d), text, { color: c.style.color }) : formatDiagnosticLine(rel(d)));
  }
  if (state.valid) {
    const p = state.config.pipeline;
    c.err(`${path.relative(process.cwd(), state.file) || state.file} is valid: pipeline "${p.name}", ${p.stages.length} stage${p.stages.length === 1 ? '' : 's'}, ${state.config.environments.length} environment${state.config.environments.length === 1 ? '' : 's'}`);
    return EXIT.ok;
  }
  return EXIT.usage;
}

async function cmdStop(args: string[], c: Common): Promise<number> {
  const { values } = parseArgs({ args, options: COMMON_OPTIONS });
  const ws = workspaceOf(values.workspace);
  const live = await connect(ws);
  const d = readDiscovery(ws);
  if (!live || !d) {
    c.out('no agent is running for this workspace');
    return EXIT.ok;
  }
  process.kill(d.pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (isAlive(d.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(d.pid)) {
    c.err(`the agent (pid ${d.pid}) did not stop within 15 s`);
    return EXIT.agent;
  }
  c.out(`stopped the agent (pid ${d.pid})`);
  return EXIT.ok;
}

async function cmdDashboard(args: string[], c: Common): Promise<number> {
  const { values } = parseArgs({ args, options: { workspace: COMMON_OPTIONS.workspace, 'no-open': { type: 'boolean', default: false } } });
  c.workspace = values.workspace;
  const agent = await client(c);
  const url = dashboardUrl(agent.discovery.port, agent.discovery.token);
  c.out(url);
  if (values['no-open']) return EXIT.ok;
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'linux' && (process.env.DISPLAY || process.env.WAYLAND_DISPLAY) ? 'xdg-open' : undefined;
  if (!opener) {
    c.err('no display to open a browser on: open the address above in a browser on this machine');
    return EXIT.ok;
  }
  // The browser outlives the command; a missing opener only costs the message.
  const child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
  await new Promise<void>((resolve) => {
    child.once('spawn', resolve);
    child.once('error', (e) => {
      c.err(`could not run ${opener} (${e.message}): open the address above in a browser`);
      resolve();
    });
  });
  child.unref();
  return EXIT.ok;
}

async function cmdEnvs(args: string[], c: Common): Promise<number> {
  const { values } = parseArgs({ args, options: COMMON_OPTIONS });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const agent = await client(c);
  const envs = await agent.request<EnvironmentStatus[]>('GET', '/environments');
  if (c.json) {
    c.out(JSON.stringify(envs, null, 2));
    return EXIT.ok;
  }
  if (envs.length === 0) c.out('no environments: declare them under "environments:" in conveyor.yml');
  for (const e of envs) {
    const live = e.live ? `${e.name}@${e.live.number} ${e.live.artifact.digest.replace('sha256:', '').slice(0, 12)}${e.live.commit ? ` (${shortSha(e.live.commit)})` : ''} · ${ago(e.liveSince)} by ${e.liveBy}` : 'nothing deployed';
    c.out(`${paint(c.style, 'bold', e.name)} · ${e.runtime} · promotion ${e.promotion} · ${e.health}${e.url ? ` · ${e.url}` : ''}`);
    c.out(`  live: ${live}`);
    if (e.sync) c.out(`  ${syncLine(c, e.sync)}`);
    if (e.current) c.out(`  deploying: #${e.current.id} → release ${e.current.toRelease} (${e.current.status})`);
    for (const q of e.queue) c.out(`  queued: #${q.id} → release ${q.toRelease}`);
    if (e.pendingApproval) c.out(paint(c.style, 'yellow', `  approval #${e.pendingApproval.id} pending for release ${e.pendingApproval.release}: conveyor approve ${e.pendingApproval.id}  |  conveyor reject ${e.pendingApproval.id}`));
    const earlier = e.releases.filter((r) => r.number !== e.live?.number).slice(0, 5);
    if (earlier.length) c.out(`  earlier releases: ${earlier.map((r) => `${r.number}`).join(', ')} (conveyor rollback ${e.name} --to N)`);
  }
  return EXIT.ok;
}

/** Follows a deployment's progress until it ends; 0 when it succeeded. */
async function followDeployment(agent: AgentClient, d: DeploymentInfo, since: number, c: Common): Promise<number> {
  if (!c.json) c.out(`deploy #${d.id}: ${d.environment} → release ${d.toRelease} (${d.trigger})`);
  let final: DeploymentInfo | undefined = FINISHED_DEPLOYMENT.includes(d.status) ? d : undefined;
  if (!final) {
    await agent.follow(since, (e) => {
      if (e.type === 'deployment.progress' && e.deploymentId === d.id && !c.json) c.out(`  ${e.message}`);
      if (e.type === 'approval.changed' && e.approval.deploymentId === d.id && e.approval.status === 'pending' && !c.json) {
        c.out(paint(c.style, 'yellow', `  waiting for approval #${e.approval.id}: conveyor approve ${e.approval.id}`));
      }
      if (e.type === 'deployment.changed' && e.deployment.id === d.id && FINISHED_DEPLOYMENT.includes(e.deployment.status)) {
        final = e.deployment;
        return true;
      }
      return;
    });
  }
  const done = final!;
  if (c.json) c.out(JSON.stringify(done, null, 2));
  else c.out(`deploy #${done.id} ${done.status.replace('_', ' ')}${done.reason ? `: ${done.reason}` : ''}`);
  return done.status === 'succeeded' ? EXIT.ok : EXIT.failed;
}

const FINISHED_DEPLOYMENT: readonly DeploymentInfo['status'][] = ['succeeded', 'rolled_back', 'failed', 'rejected', 'cancelled'];

async function cmdDeploy(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...COMMON_OPTIONS, run: { type: 'string' }, stage: { type: 'string' } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  if (!positionals[0]) throw new UsageError('name the environment: conveyor deploy staging');
  const agent = await client(c);
  const since = (await agent.health()).lastSeq;
  const d = await agent.request<DeploymentInfo>('POST', `/environments/${encodeURIComponent(positionals[0])}/deploy`, {
    run: values.run !== undefined ? runId(values.run) : undefined,
    stage: values.stage,
    via: 'cli',
  });
  return followDeployment(agent, d, since, c);
}

async function cmdPromote(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...COMMON_OPTIONS, from: { type: 'string' } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  if (!positionals[0] || !values.from) throw new UsageError('conveyor promote production --from staging');
  const agent = await client(c);
  const since = (await agent.health()).lastSeq;
  const d = await agent.request<DeploymentInfo>('POST', `/environments/${encodeURIComponent(positionals[0])}/promote`, { from: values.from, via: 'cli' });
  return followDeployment(agent, d, since, c);
}

async function cmdRollback(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...COMMON_OPTIONS, to: { type: 'string' } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  if (!positionals[0]) throw new UsageError('name the environment: conveyor rollback staging [--to N]');
  if (values.to !== undefined && !/^\d+$/.test(values.to)) throw new UsageError('--to takes a release number');
  const agent = await client(c);
  const since = (await agent.health()).lastSeq;
  const d = await agent.request<DeploymentInfo>('POST', `/environments/${encodeURIComponent(positionals[0])}/rollback`, {
    to: values.to !== undefined ? Number(values.to) : undefined,
    via: 'cli',
  });
  return followDeployment(agent, d, since, c);
}

async function cmdPreview(args: string[], c: Common): Promise<number> {
  const [verb, ...rest] = args;
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...COMMON_OPTIONS, branch: { type: 'string', short: 'b' }, template: { type: 'string' } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  if (verb === 'list') {
    const agent = await client(c);
    const previews = await agent.request<PreviewInfo[]>('GET', '/previews');
    if (c.json) c.out(JSON.stringify(previews, null, 2));
    else if (previews.length === 0) c.out('no preview environments: conveyor preview create --branch B');
    else for (const p of previews) c.out(`${p.name} · branch ${p.branch} · from ${p.template} · ${ago(p.createdAt)} by ${p.createdBy}`);
    return EXIT.ok;
  }
  if (verb === 'create') {
    if (!values.branch) throw new UsageError('conveyor preview create --branch B [--template T]');
    const agent = await client(c);
    const since = (await agent.health()).lastSeq;
    const r = await agent.request<{ preview: PreviewInfo; deployment: DeploymentInfo | null }>('POST', '/previews', { branch: values.branch, template: values.template, via: 'cli' });
    if (!c.json) c.out(`preview ${r.preview.name} for branch ${r.preview.branch}`);
    if (!r.deployment) {
      if (c.json) c.out(JSON.stringify(r, null, 2));
      else c.out(`no green run of ${values.branch} has an artifact yet: run it (conveyor run --commit ${values.branch}), then conveyor deploy ${r.preview.name}`);
      return EXIT.ok;
    }
    return followDeployment(agent, r.deployment, since, c);
  }
  if (verb === 'destroy') {
    if (!positionals[0]) throw new UsageError('conveyor preview destroy NAME (conveyor preview list shows them)');
    const agent = await client(c);
    const r = await agent.request<{ destroyed: PreviewInfo }>('DELETE', `/previews/${encodeURIComponent(positionals[0])}`);
    if (c.json) c.out(JSON.stringify(r, null, 2));
    else c.out(`destroyed ${r.destroyed.name}`);
    return EXIT.ok;
  }
  throw new UsageError('conveyor preview create --branch B | preview destroy NAME | preview list');
}

async function cmdDecide(verdict: 'approve' | 'reject', args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...COMMON_OPTIONS, reason: { type: 'string', short: 'm' } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const m = /^#?(\d+)$/.exec(positionals[0] ?? '');
  if (!m) throw new UsageError(`name the approval: conveyor ${verdict} ID (conveyor envs lists pending ones)`);
  const agent = await client(c);
  const a = await agent.request<ApprovalInfo>('POST', `/approvals/${m[1]}/${verdict}`, { reason: values.reason, via: 'cli' });
  if (c.json) c.out(JSON.stringify(a, null, 2));
  else c.out(`approval #${a.id} ${a.status}: ${a.environment}@${a.release}${a.reason ? ` (${a.reason})` : ''}`);
  return EXIT.ok;
}

function syncLine(c: Common, s: SyncInfo): string {
  const color = s.sync === 'Synced' ? 'green' : s.sync === 'OutOfSync' ? 'yellow' : 'red';
  const parts = [`git: ${paint(c.style, color, s.sync)}${s.causes.length ? ` (${s.causes.join(' + ')})` : ''}`, s.revision ? `at ${s.revision.slice(0, 7)}` : 'no desired state yet'];
  if (s.paused) parts.push('reconcile paused');
  else if (s.policy.manual) parts.push('manual');
  else parts.push(`selfHeal ${s.policy.selfHeal ? 'on' : 'off'}, prune ${s.policy.prune ? 'on' : 'off'}`);
  const lines = [parts.join(' · ')];
  for (const d of s.diff.slice(0, 10)) lines.push(`    ${d.message}`);
  if (s.error) lines.push(paint(c.style, 'red', `    ${s.error.message}`));
  return lines.join('\n');
}

async function cmdDrift(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: COMMON_OPTIONS });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  if (!positionals[0]) throw new UsageError('name the environment: conveyor drift staging');
  const agent = await client(c);
  const v = await agent.request<StateView>('GET', `/environments/${encodeURIComponent(positionals[0])}/state`);
  if (c.json) {
    c.out(JSON.stringify(v, null, 2));
    return EXIT.ok;
  }
  c.out(`${paint(c.style, 'bold', positionals[0])}: ${syncLine(c, v.sync)}`);
  c.out(`  desired: ${v.sync.file} on ${v.branch}${v.repo ? ` of ${v.repo}` : ''}`);
  if (v.sync.sync === 'Synced') c.out('  the live state is what git says');
  return v.sync.sync === 'Synced' ? EXIT.ok : EXIT.failed;
}

async function cmdSync(args: string[], c: Common): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...COMMON_OPTIONS, 'dry-run': { type: 'boolean', default: false } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  if (!positionals[0]) throw new UsageError('name the environment: conveyor sync staging [--dry-run]');
  const agent = await client(c);
  const since = (await agent.health()).lastSeq;
  const r = await agent.request<SyncResult>('POST', `/environments/${encodeURIComponent(positionals[0])}/sync`, { dryRun: values['dry-run'], via: 'cli' });
  if (c.json && (r.dryRun || !r.deployment)) {
    c.out(JSON.stringify(r, null, 2));
    return EXIT.ok;
  }
  if (!c.json) {
    if (r.plan.length === 0) c.out(`${positionals[0]} is Synced: nothing to do`);
    for (const line of r.plan) c.out(`${r.dryRun ? 'would ' : ''}${line}`);
  }
  if (!r.deployment) return EXIT.ok;
  return followDeployment(agent, r.deployment, since, c);
}

async function cmdReconcile(args: string[], c: Common): Promise<number> {
  const [verb, ...rest] = args;
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: COMMON_OPTIONS });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  if ((verb !== 'pause' && verb !== 'resume') || !positionals[0]) throw new UsageError('conveyor reconcile pause ENV | conveyor reconcile resume ENV');
  const agent = await client(c);
  const s = await agent.request<SyncInfo>('POST', `/environments/${encodeURIComponent(positionals[0])}/reconcile`, { paused: verb === 'pause' });
  if (c.json) c.out(JSON.stringify(s, null, 2));
  else c.out(`${positionals[0]}: reconcile ${s.paused ? 'paused: changes in git and drift are reported, not applied' : 'resumed'}\n  ${syncLine(c, s)}`);
  return EXIT.ok;
}

function alertLine(c: Common, a: Alert): string[] {
  const color = a.status === 'resolved' ? 'gray' : a.severity === 'error' ? 'red' : 'yellow';
  const state = a.status === 'snoozed' ? `snoozed until ${new Date(a.snoozedUntil!).toLocaleString()}` : a.status === 'resolved' ? `resolved ${ago(a.resolvedAt)} (${a.resolvedBy})` : 'open';
  const where = [a.runId !== null ? `run #${a.runId}` : null, a.environment, a.stage ? `stage ${a.stage}` : null].filter(Boolean).join(' · ');
  return [
    `${paint(c.style, color, `#${a.id}`)} ${a.title}`,
    `    ${a.rule} · ${state} · ${a.count > 1 ? `${a.count} times, last ${ago(a.lastAt)}` : ago(a.firstAt)}${where ? ` · ${where}` : ''}`,
    ...a.detail.slice(0, 5).map((d) => `    ${truncate(d, 160)}`),
  ];
}

async function cmdAlerts(args: string[], c: Common): Promise<number> {
  const verb = args[0] === 'snooze' || args[0] === 'resolve' ? args[0] : null;
  const { values, positionals } = parseArgs({ args: verb ? args.slice(1) : args, allowPositionals: true, options: { ...COMMON_OPTIONS, all: { type: 'boolean', default: false }, for: { type: 'string' } } });
  Object.assign(c, { workspace: values.workspace, json: values.json });
  const agent = await client(c);
  if (verb) {
    const m = /^#?(\d+)$/.exec(positionals[0] ?? '');
    if (!m) throw new UsageError(`name the alert: conveyor alerts ${verb} ID (conveyor alerts lists them)`);
    const a = await agent.request<Alert>('POST', `/alerts/${m[1]}/${verb}`, verb === 'snooze' ? { for: values.for ?? '1h', via: 'cli' } : { via: 'cli' });
    if (c.json) c.out(JSON.stringify(a, null, 2));
    else for (const line of alertLine(c, a)) c.out(line);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError('conveyor alerts [--all] | alerts snooze ID [--for 1h] | alerts resolve ID');
  const list = await agent.request<Alert[]>('GET', `/alerts${values.all ? '?all=1' : ''}`);
  if (c.json) {
    c.out(JSON.stringify(list, null, 2));
    return EXIT.ok;
  }
  if (list.length === 0) c.out(values.all ? 'no alerts yet' : 'no open alerts (conveyor alerts --all shows resolved ones)');
  for (const a of list) for (const line of alertLine(c, a)) c.out(line);
  return EXIT.ok;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`conveyor: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = EXIT.agent;
    },
  );
}
