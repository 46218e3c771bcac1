import type Docker from 'dockerode';
import { toDisposable, type IDisposable } from '../util/lifecycle';
import { Backoff, Debouncer } from '../util/timers';
import { destroyStream } from './docker-common';

/** One event of the daemon's stream (GET /events): the fields the runtimes read. */
export interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { Attributes?: Record<string, string> };
}

/** What a watch of the daemon's events listens to. */
export interface DockerEventWatch {
  /** The daemon's own filters (type, label, ...). */
  filters: Record<string, string[]>;
  /** Whether an event that passed the filters is a change for the watcher. */
  concerns(event: DockerEvent): boolean;
  /** Coalesces the calls of onChange. */
  debounceMs: number;
}

/**
 * Calls onChange (debounced) on each event of the daemon's stream that concerns the watch. When
 * the stream breaks (the daemon restarted), it reconnects with back-off and calls onChange once
 * connected again, since events may have been missed.
 */
export function watchDockerEvents(docker: Docker, watch: DockerEventWatch, onChange: () => void): IDisposable {
  let disposed = false;
  let stream: NodeJS.ReadableStream | undefined;
  const debounce = new Debouncer(onChange, watch.debounceMs);
  const retry = new Backoff(() => void connect(true));
  const concerns = (line: string): boolean => {
    let event: DockerEvent;
    try {
      event = JSON.parse(line);
    } catch {
      return false;
    }
    return watch.concerns(event);
  };
  // Events since this moment: the daemon replays what happened before the stream opened, and
  // after a break, what happened since the break.
  let since = nowSeconds();
  let partial = '';
  const connect = async (again: boolean) => {
    let s: NodeJS.ReadableStream;
    try {
      s = await docker.getEvents({ since: since as unknown as number, filters: watch.filters as Docker.GetEventsOptions['filters'] });
    } catch {
      retry.schedule();
      return;
    }
    if (disposed) {
      destroyStream(s);
      return;
    }
    stream = s;
    partial = '';
    retry.reset();
    if (again) debounce.trigger();
    const broken = () => {
      if (stream !== s) return;
      stream = undefined;
      since = nowSeconds();
      retry.schedule();
    };
    s.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      if (lines.some(concerns)) debounce.trigger();
    });
    s.on('error', broken);
    s.on('end', broken);
    s.on('close', broken);
  };
  void connect(false);
  return toDisposable(() => {
    disposed = true;
    debounce.dispose();
    retry.dispose();
    if (stream) destroyStream(stream);
  });
}

/** The daemon's `since`: seconds with a fraction. */
function nowSeconds(): string {
  return (Date.now() / 1000).toFixed(3);
}
