import * as vscode from 'vscode';
import type { StepInfo } from '../../agent/protocol';
import { FINISHED_STAGE_STATUSES } from '../../agent/protocol';
import { stepKey, type LogChunk } from '../model/runModel';
import type { FolderSession } from '../session/folderSession';
import { errorMessage } from '../util/async';
import { durationBetween } from '../util/time';

/** Whose log a terminal shows: a whole stage (every attempt, every step) or one step. */
export interface LogTarget {
  session: FolderSession;
  runId: number;
  stage: string;
  /** With `step`: one step of one attempt. */
  attempt?: number;
  step?: number;
}

export function logTargetKey(t: LogTarget): string {
  return `${t.session.folder.uri.toString()}#${t.runId}/${t.stage}${t.step !== undefined ? `/${t.attempt}/${t.step}` : ''}`;
}

export function logTerminalName(t: LogTarget): string {
  return `Conveyor #${t.runId} ${t.stage}${t.step !== undefined ? ` · step ${t.step + 1}${(t.attempt ?? 1) > 1 ? ` (attempt ${t.attempt})` : ''}` : ''}`;
}

const DIM = '\x1b[2m';
const RESET = '\x1b[0m';
const GREEN = '\x1b[32m';
const RED = '\x1b[31m';
const YELLOW = '\x1b[33m';
/** Most text a terminal keeps as its transcript (what tests read). */
const TRANSCRIPT_MAX = 2 * 1024 * 1024;

interface Printed {
  /** Length of the log fetched for this step at open; undefined for steps followed from their start. */
  fetched: number | undefined;
  /** Chunks of a step whose start the model missed, held until they can be matched with the fetched log. */
  unmatched: string;
  fetchedText: string;
  footer: boolean;
}

/**
 * A step's or stage's log in a terminal, with its ANSI colours: first the whole log so far
 * (GET /api/runs/:id/logs), then the `log` events that follow, live.
 *
 * Events that arrive while the log is fetched are queued and then written after it, minus what
 * the fetched log already holds: the model knows each chunk's offset in its step's log (it
 * followed the step from its start), so the overlap is exact. For a step that started before
 * the model followed it, the overlap is found by matching the chunks against the fetched log's end.
 */
export class LogTerminal implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  readonly onDidWrite = this.writeEmitter.event;
  private readonly closeEmitter = new vscode.EventEmitter<void>();
  readonly onDidClose = this.closeEmitter.event;
  private readonly subs: vscode.Disposable[] = [];
  private queue: (LogChunk | StepInfo)[] | undefined = [];
  private readonly printed = new Map<string, Printed>();
  private atLineStart = true;
  private opened = false;
  private loaded!: () => void;
  /** Resolves once the log so far is written and the terminal follows live events. */
  readonly ready = new Promise<void>((resolve) => (this.loaded = resolve));
  /** Everything written, as written (newlines as \r\n). */
  transcript = '';

  constructor(
    readonly target: LogTarget,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  private matches(x: { runId: number; stage: string; attempt: number }, index: number): boolean {
    const t = this.target;
    if (x.runId !== t.runId || x.stage !== t.stage) return false;
    return t.step === undefined || (x.attempt === t.attempt && index === t.step);
  }

  open(): void {
    if (this.opened) return;
    this.opened = true;
    const model = this.target.session.model;
    // Follow first, then fetch: nothing falls between the two.
    this.subs.push(
      model.onDidLog((c) => {
        if (this.matches(c, c.step)) this.enqueue(c);
      }),
      model.onDidChangeStep((s) => {
        if (this.matches(s, s.index)) this.enqueue(s);
      }),
    );
    this.load()
      .catch((e: unknown) => this.writeLine(`${RED}could not read the log: ${errorMessage(e)}${RESET}`))
      .finally(() => {
        const queued = this.queue ?? [];
        this.queue = undefined;
        for (const item of queued) this.handle(item, true);
        for (const key of this.printed.keys()) this.settle(key);
        this.loaded();
      });
  }

  private enqueue(item: LogChunk | StepInfo): void {
    if (this.queue) this.queue.push(item);
    else this.handle(item, false);
  }

  private async load(): Promise<void> {
    const { session, runId } = this.target;
    const http = await session.requireApi(20_000);
    await session.ensureDetail(runId);
    const run = session.model.get(runId);
    if (!run) throw new Error(`run #${runId} is not known to the agent`);
    const steps = run.steps.filter((s) => this.matches(s, s.index));
    if (steps.length === 0) {
      const stage = run.stages.find((s) => s.name === this.target.stage);
      this.writeLine(`${DIM}── #${runId} ${this.target.stage}: ${stage ? (stage.status === 'pending' ? 'waiting to start…' : `${stage.status}, no output`) : 'no such stage'}${RESET}`);
      return;
    }
    for (const step of steps) {
      const key = stepKey(step);
      if (step.status === 'skipped' || step.status === 'pending') {
        this.writeLine(`${DIM}── step ${step.index + 1} ${step.status}: ${firstLine(step.command)}${RESET}`);
        this.printed.set(key, { fetched: 0, unmatched: '', fetchedText: '', footer: true });
        continue;
      }
      this.header(step);
      const text = await http.logs(runId, { stage: step.stage, attempt: step.attempt, step: step.index });
      this.write(text);
      const finished = FINISHED_STAGE_STATUSES.includes(step.status);
      this.printed.set(key, { fetched: text.length, unmatched: '', fetchedText: text.slice(-65536), footer: false });
      if (finished) this.footer(step);
    }
  }

  private handle(item: LogChunk | StepInfo, draining: boolean): void {
    if ('text' in item) {
      const key = stepKey(item);
      let p = this.printed.get(key);
      if (!p) {
        // A step that started after the terminal opened: everything it prints is new.
        const info = this.target.session.model.get(item.runId)?.steps.find((s) => stepKey(s) === key);
        if (info) this.header(info);
        p = { fetched: undefined, unmatched: '', fetchedText: '', footer: false };
        this.printed.set(key, p);
      }
      if (p.fetched === undefined) {
        this.write(item.text);
      } else if (item.offset !== undefined) {
        const skip = p.fetched - item.offset;
        if (skip < item.text.length) this.write(item.text.slice(Math.max(0, skip)));
      } else {
        // Unknown offset: held and matched against the fetched log's end (at once when live).
        p.unmatched += item.text;
        if (!draining) this.settle(key);
      }
      return;
    }
    const key = stepKey(item);
    let p = this.printed.get(key);
    for (const other of this.printed.keys()) if (other !== key) this.settle(other);
    if (!p) {
      if (item.status === 'skipped') {
        this.writeLine(`${DIM}── step ${item.index + 1} skipped: ${firstLine(item.command)}${RESET}`);
        this.printed.set(key, { fetched: undefined, unmatched: '', fetchedText: '', footer: true });
        return;
      }
      this.header(item);
      p = { fetched: undefined, unmatched: '', fetchedText: '', footer: false };
      this.printed.set(key, p);
    }
    if (FINISHED_STAGE_STATUSES.includes(item.status) && !p.footer) {
      this.settle(key);
      this.footer(item);
    }
  }

  /**
   * Writes the chunks held for a step whose start the model missed, minus their overlap with
   * the fetched log; from then on its chunks are new.
   */
  private settle(key: string): void {
    const p = this.printed.get(key);
    if (!p || p.fetched === undefined || !p.unmatched) return;
    this.write(p.unmatched.slice(overlap(p.fetchedText, p.unmatched)));
    p.unmatched = '';
    p.fetched = undefined;
    p.fetchedText = '';
  }

  private header(step: StepInfo): void {
    const attempt = step.attempt > 1 ? ` · attempt ${step.attempt}` : '';
    this.writeLine(`${DIM}── #${step.runId} ${step.stage}${attempt} · step ${step.index + 1}: ${firstLine(step.command)}${RESET}`);
  }

  private footer(step: StepInfo): void {
    const p = this.printed.get(stepKey(step));
    if (p) p.footer = true;
    const color = step.status === 'succeeded' ? GREEN : step.status === 'failed' || step.status === 'timed_out' ? RED : YELLOW;
    const mark = step.status === 'succeeded' ? '✔' : step.status === 'failed' || step.status === 'timed_out' ? '✘' : '■';
    const took = durationBetween(step.startedAt, step.finishedAt);
    const details = [step.exitCode !== null ? `exit ${step.exitCode}` : undefined, took].filter(Boolean).join(', ');
    this.writeLine(`${color}${mark} ${step.status.replace('_', ' ')}${RESET}${details ? ` ${DIM}(${details})${RESET}` : ''}`);
  }

  private writeLine(line: string): void {
    if (!this.atLineStart) this.write('\n');
    this.write(`${line}\n`);
  }

  private write(text: string): void {
    if (!text) return;
    const out = text.replace(/\r?\n/g, '\r\n');
    this.atLineStart = out.endsWith('\n');
    if (this.transcript.length < TRANSCRIPT_MAX) this.transcript += out;
    this.writeEmitter.fire(out);
  }

  close(): void {
    for (const d of this.subs.splice(0)) d.dispose();
    this.log.debug(`log terminal closed: ${logTerminalName(this.target)}`);
  }

  dispose(): void {
    this.close();
    this.writeEmitter.dispose();
    this.closeEmitter.dispose();
  }
}

function firstLine(command: string): string {
  return command.split('\n')[0];
}

/** Longest k such that `fetched` ends with the first k characters of `chunks` (at most 64 KiB). */
export function overlap(fetched: string, chunks: string): number {
  for (let k = Math.min(fetched.length, chunks.length, 65536); k > 0; k--) {
    if (fetched.endsWith(chunks.slice(0, k))) return k;
  }
  return 0;
}
