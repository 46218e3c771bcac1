import type Docker from 'dockerode';
import { reportUnexpected, toDisposable, type IDisposable } from '../util/lifecycle';
import { Backoff, Debouncer } from '../util/timers';
import { destroyStream } from './docker-common';

/** One event of the daemon's stream (GET /events): the fields the runtimes read. */
export interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { Attributes?: Record<string, string> };
}

/**
 * The actions of a container that change what runs or how: not exec_create/exec_start/exec_die
 * (the daemon sends them at each run of a health check), top, attach, resize, copy or export.
 * The daemon matches `health_status` to its `health_status: healthy` and the like.
 */
export const CONTAINER_ACTIONS = ['create', 'start', 'restart', 'die', 'kill', 'stop', 'destroy', 'oom', 'health_status', 'pause', 'unpause', 'update', 'rename'];

/** The actions of a swarm service. */
export const SERVICE_ACTIONS = ['create', 'update', 'remove'];

/** What a watch of the daemon's events listens to. */
export interface DockerEventWatch {
  /**
   * The daemon's own filters (type, label, event, ...). Watches with the same filters on the same
   * client share one stream: give the same filters to every watch of a kind, and tell them apart
   * with `concerns`.
   */
  filters: Record<string, string[]>;
  /** Whether an event that passed the filters is a change for the watcher. */
  concerns(event: DockerEvent): boolean;
  /** Coalesces the calls of onChange. */
  debounceMs: number;
}

/**
 * Calls onChange (debounced) on each event of the daemon's stream that concerns the watch. When
 * the stream breaks (the daemon restarted), it reconnects with back-off and calls onChange once
 * connected again, since events may have been missed. All the watches of a client with the same
 * filters share one stream, which closes when the last of them is disposed.
 */
export function watchDockerEvents(docker: Docker, watch: DockerEventWatch, onChange: () => void): IDisposable {
  const key = filtersKey(watch.filters);
  let byFilters = shared.get(docker);
  if (!byFilters) shared.set(docker, (byFilters = new Map()));
  let stream = byFilters.get(key);
  if (!stream) {
    stream = new SharedEventStream(docker, watch.filters);
    byFilters.set(key, stream);
  }
  const watcher: Watcher = { concerns: watch.concerns, debounce: new Debouncer(onChange, watch.debounceMs) };
  stream.watchers.add(watcher);
  const s = stream;
  const streams = byFilters;
  return toDisposable(() => {
    watcher.debounce.dispose();
    s.watchers.delete(watcher);
    if (s.watchers.size) return;
    s.dispose();
    if (streams.get(key) === s) streams.delete(key);
  });
}

/** The connected event streams of a client, one per set of filters: what diagnostics (and tests) read. */
export function openEventStreams(docker: Docker): NodeJS.ReadableStream[] {
  return [...(shared.get(docker)?.values() ?? [])].flatMap((s) => (s.stream ? [s.stream] : []));
}

interface Watcher {
  concerns(event: DockerEvent): boolean;
  debounce: Debouncer;
}

/** The shared streams of each client, by their filters' key. */
const shared = new WeakMap<Docker, Map<string, SharedEventStream>>();

/** One GET /events of the daemon: each event is parsed once and offered to every watcher. */
class SharedEventStream implements IDisposable {
  readonly watchers = new Set<Watcher>();
  stream: NodeJS.ReadableStream | undefined;
  private disposed = false;
  private readonly retry = new Backoff(() => void this.connect(true));
  // Events since this moment: the daemon replays what happened before the stream opened, and
  // after a break, what happened since the break.
  private since = nowSeconds();
  private partial = '';

  constructor(
    private readonly docker: Docker,
    private readonly filters: Record<string, string[]>,
  ) {
    void this.connect(false);
  }

  private async connect(again: boolean): Promise<void> {
    let s: NodeJS.ReadableStream;
    try {
      s = await this.docker.getEvents({ since: this.since as unknown as number, filters: this.filters as Docker.GetEventsOptions['filters'] });
    } catch {
      this.retry.schedule();
      return;
    }
    if (this.disposed) {
      destroyStream(s);
      return;
    }
    this.stream = s;
    this.partial = '';
    this.retry.reset();
    if (again) for (const w of this.watchers) w.debounce.trigger();
    const broken = () => {
      if (this.stream !== s) return;
      this.stream = undefined;
      this.since = nowSeconds();
      this.retry.schedule();
    };
    s.on('data', (chunk: Buffer) => {
      const lines = (this.partial + chunk.toString()).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) this.dispatch(line);
    });
    s.on('error', broken);
    s.on('end', broken);
    s.on('close', broken);
  }

  private dispatch(line: string): void {
    let event: DockerEvent;
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    for (const w of this.watchers) {
      try {
        if (w.concerns(event)) w.debounce.trigger();
      } catch (e) {
        reportUnexpected(e);
      }
    }
  }

  dispose(): void {
    this.disposed = true;
    this.retry.dispose();
    const s = this.stream;
    this.stream = undefined;
    if (s) destroyStream(s);
  }
}

/** The same key for the same filters, whatever the order of their names and values. */
function filtersKey(filters: Record<string, string[]>): string {
  return JSON.stringify(
    Object.keys(filters)
      .sort()
      .map((k) => [k, [...new Set(filters[k])].sort()]),
  );
}

/** The daemon's `since`: seconds with a fraction. */
function nowSeconds(): string {
  return (Date.now() / 1000).toFixed(3);
}
