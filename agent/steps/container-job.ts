import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import Docker from 'dockerode';
import { describeDockerError, dockerMessage, readJsonLines } from '../runtimes/docker';
import { destroyStream } from '../runtimes/docker-common';
import { sleep } from '../util/timers';

/** Where a stage's outputs folder (reports, artifacts) is mounted read-write in a job's container, by convention. */
export const JOB_OUTPUT_DIR = '/conveyor/out';

/** A host folder bound into the job's container. */
export interface JobMount {
  /** Absolute path on the daemon's host. */
  source: string;
  /** Absolute path in the container. */
  target: string;
  readOnly?: boolean;
}

export interface ContainerJobOptions {
  /** `docker`: one container on the local daemon. `swarm`: a replicated-job service of one task (the daemon must be a swarm manager). */
  mode: 'docker' | 'swarm';
  /** The image, by name or repository@digest; pulled when the daemon does not have it. */
  image: string;
  /** Run by `/bin/sh -c` (the image's entrypoint is replaced). */
  command: string;
  env?: Record<string, string>;
  /** The working directory in the container; default the image's. */
  workdir?: string;
  /** Bind mounts: typically the workspace read-only at `workdir`, and an outputs folder read-write at JOB_OUTPUT_DIR. */
  mounts?: JobMount[];
  /** Names the container or service (a random suffix is added): "conveyor-42-test". */
  name?: string;
  /** On the container (and the service), so that leftovers can be found: run, stage, scope. */
  labels?: Record<string, string>;
  /** Aborting stops the job and removes what it started: the result is `cancelled`. */
  signal?: AbortSignal;
  /** After this long the job is stopped and removed: the result is `timed_out`. None: no limit. */
  timeoutMs?: number;
  /** The job's output as it comes, decoded as UTF-8, per stream. */
  onLog?: (text: string, stream: 'stdout' | 'stderr') => void;
  /** Default: the daemon of DOCKER_HOST or /var/run/docker.sock. */
  docker?: Docker;
}

export interface ContainerJobResult {
  status: 'succeeded' | 'failed' | 'cancelled' | 'timed_out';
  /** The command's exit code, when it ran to its end. */
  exitCode: number | null;
  /** One line for people when it did not succeed: "exit code 3", "the image ... could not be pulled: ...". */
  message: string | null;
}

/** Between two looks at a swarm job's task. */
const POLL_MS = 250;

/**
 * Runs one command to completion in a container, for the `docker` and `swarm` executors: the
 * output streams to onLog as it comes, and the container (or service) is removed at the end,
 * and on cancel or time-out. Expected failures (a non-zero exit, a missing image, no daemon, a
 * daemon that is no swarm manager) are results with a message, never exceptions.
 */
export async function runContainerJob(opts: ContainerJobOptions): Promise<ContainerJobResult> {
  const docker = opts.docker ?? new Docker();
  if (!opts.image.trim()) return failed('no image given for the container job: name one (repository:tag or repository@sha256:...)');
  if (!opts.command.trim()) return failed('no command given for the container job: say what to run in the container');
  const stop = new AbortController();
  let why: 'cancel' | 'timeout' | null = null;
  const abort = (reason: 'cancel' | 'timeout') => {
    why ??= reason;
    stop.abort();
  };
  const onCancel = () => abort('cancel');
  if (opts.signal?.aborted) return aborted();
  opts.signal?.addEventListener('abort', onCancel, { once: true });
  const timer = opts.timeoutMs ? setTimeout(() => abort('timeout'), opts.timeoutMs) : undefined;
  const sink = new LogSink(opts.onLog);
  // Cancel or time-out decide the result, whatever the stopped job itself ended with.
  const stopped = (): ContainerJobResult | null =>
    why === 'cancel' ? aborted() : why === 'timeout' ? { status: 'timed_out', exitCode: null, message: `timed out after ${Math.round(opts.timeoutMs! / 100) / 10}s` } : null;
  try {
    const exit = opts.mode === 'swarm' ? await runAsSwarmJob(docker, opts, stop.signal, sink) : await runInContainer(docker, opts, stop.signal, sink);
    return stopped() ?? exit;
  } catch (e) {
    return stopped() ?? failed(e instanceof JobError ? e.message : describeDockerError(docker, e));
  } finally {
    sink.end();
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onCancel);
  }
}

// -- docker: one container -------------------------------------------------------------------

async function runInContainer(docker: Docker, opts: ContainerJobOptions, signal: AbortSignal, sink: LogSink): Promise<ContainerJobResult> {
  await ensureImage(docker, opts.image, signal);
  if (signal.aborted) return aborted();
  const container = await docker.createContainer({
    name: jobName(opts.name),
    Image: opts.image,
    Entrypoint: ['/bin/sh', '-c'],
    Cmd: [opts.command],
    Env: envList(opts.env),
    WorkingDir: opts.workdir,
    Labels: opts.labels ?? {},
    Tty: false,
    HostConfig: {
      // A shell as PID 1 ignores SIGTERM; with an init, the job stops when asked.
      Init: true,
      Mounts: (opts.mounts ?? []).map((m) => ({ Type: 'bind' as const, Source: m.source, Target: m.target, ReadOnly: !!m.readOnly })),
    },
  });
  const remove = () => container.remove({ force: true, v: true }).catch(() => undefined);
  try {
    const output = (await container.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
    const frames = new FrameReader((stream, payload) => sink.frame(stream, payload));
    const ended = new Promise<void>((resolve) => {
      output.on('data', (chunk: Buffer) => frames.push(chunk));
      output.on('end', resolve);
      output.on('close', resolve);
      output.on('error', () => resolve());
    });
    // Before start: "next-exit", since a container that has not started counts as exited already.
    const waited = container.wait({ condition: 'next-exit' }) as Promise<{ StatusCode?: number }>;
    waited.catch(() => undefined);
    await container.start();
    const cancelled = onAbort(signal);
    const exit = await Promise.race([waited, cancelled.promise]);
    cancelled.dispose();
    if (!exit || signal.aborted) {
      await remove();
      return aborted();
    }
    // The output ends with the container; a moment more for what is still in the pipe.
    const drained = new AbortController();
    await Promise.race([ended.then(() => drained.abort()), sleep(2000, drained.signal)]);
    destroyStream(output);
    return exitResult(exit.StatusCode ?? null);
  } finally {
    await remove();
  }
}

async function ensureImage(docker: Docker, image: string, signal: AbortSignal): Promise<void> {
  try {
    await docker.getImage(image).inspect();
    return;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode !== 404) throw e;
  }
  try {
    const stream = (await docker.pull(image, { abortSignal: signal })) as NodeJS.ReadableStream;
    await readJsonLines(stream, (msg) => {
      if (msg.error) throw new Error(msg.errorDetail?.message ?? msg.error);
    });
  } catch (e) {
    if (signal.aborted) throw e;
    const why = dockerMessage(e).replace(/^\(HTTP code \d+\) [^-]*- /, '');
    throw new JobError(`the image ${image} is not on this machine and could not be pulled (${why}): build it first, or push it to a registry the daemon reaches`);
  }
}

// -- swarm: a replicated-job service ---------------------------------------------------------

async function runAsSwarmJob(docker: Docker, opts: ContainerJobOptions, signal: AbortSignal, sink: LogSink): Promise<ContainerJobResult> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
  if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
    throw new JobError(
      `this Docker daemon is not a swarm manager (swarm state: ${info.Swarm?.LocalNodeState ?? 'inactive'}), so it cannot run swarm jobs: run \`docker swarm init --advertise-addr 127.0.0.1\` for a single-node swarm, or use the docker executor`,
    );
  }
  const labels = opts.labels ?? {};
  const service = await docker.createService({
    Name: jobName(opts.name),
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: opts.image,
        Command: ['/bin/sh', '-c'],
        Args: [opts.command],
        Env: envList(opts.env),
        Dir: opts.workdir,
        Labels: labels,
        Init: true,
        Mounts: (opts.mounts ?? []).map((m) => ({ Type: 'bind' as const, Source: m.source, Target: m.target, ReadOnly: !!m.readOnly })),
      },
      // One run: a failed job is a result, not something to start again.
      RestartPolicy: { Condition: 'none' },
    },
    Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
  } as Docker.CreateServiceOptions);
  const id = service.id;
  let follow: NodeJS.ReadableStream | undefined;
  try {
    const frames = new FrameReader((stream, payload) => sink.frame(stream, payload));
    try {
      follow = (await service.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream;
      follow.on('data', (chunk: Buffer) => frames.push(chunk));
      follow.on('error', () => undefined);
    } catch {
      // Without a live log the output still comes, at the end (below).
    }
    let task: JobTask | undefined;
    for (;;) {
      if (signal.aborted) return aborted();
      const tasks = (await docker.listTasks({ filters: { service: [id] } })) as JobTask[];
      task = tasks.find((t) => FINAL.has(t.Status.State));
      if (task) break;
      await sleep(POLL_MS, signal);
    }
    if (follow) destroyStream(follow);
    await replayRest(service, sink);
    const state = task.Status.State;
    if (state === 'complete') return exitResult(0);
    const code = task.Status.ContainerStatus?.ExitCode;
    if (state === 'failed' && code) return exitResult(code);
    const err = task.Status.Err ?? state;
    const hint = /no such image|pull access denied|manifest unknown/i.test(err) ? `: build the image ${opts.image} first, or push it to a registry the daemon reaches` : '';
    return { status: 'failed', exitCode: null, message: `swarm ${state === 'rejected' ? 'rejected' : 'failed'} the job's task: ${err}${hint}` };
  } finally {
    if (follow) destroyStream(follow);
    await service.remove().catch(() => undefined);
    // Swarm keeps the containers of a job's finished tasks even when the service goes.
    const left = await docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.service.id=${id}`] } }).catch(() => []);
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  }
}

/** The part of the job's log the live stream had not delivered when the task ended. */
async function replayRest(service: Docker.Service, sink: LogSink): Promise<void> {
  let all: Buffer;
  try {
    const raw = (await service.logs({ follow: false, stdout: true, stderr: true })) as unknown;
    all = Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw));
  } catch {
    return;
  }
  let skip = sink.delivered;
  new FrameReader((stream, payload) => {
    if (skip >= payload.length) {
      skip -= payload.length;
      return;
    }
    sink.frame(stream, payload.subarray(skip));
    skip = 0;
  }).push(all);
}

// -- internals -----------------------------------------------------------------------------------

/** An expected failure whose message is for people as it is. */
class JobError extends Error {}

/** A job task as the daemon returns it (GET /tasks). */
interface JobTask {
  Status: { State: string; Err?: string; ContainerStatus?: { ExitCode?: number } };
}

const FINAL = new Set(['complete', 'failed', 'rejected', 'shutdown', 'orphaned', 'remove']);

/**
 * Splits Docker's multiplexed output (8-byte frame headers: stream, 0, 0, 0, size) into payloads
 * as chunks arrive; a frame cut between two chunks waits for the rest.
 */
class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: 'stdout' | 'stderr', payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) return;
      this.onFrame(this.pending[0] === 2 ? 'stderr' : 'stdout', this.pending.subarray(8, 8 + size));
      this.pending = this.pending.subarray(8 + size);
    }
  }
}

/** Decodes each stream's bytes as UTF-8 (a character cut between frames waits for the rest) and counts them. */
class LogSink {
  delivered = 0;
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };

  constructor(private readonly onLog: ContainerJobOptions['onLog']) {}

  frame(stream: 'stdout' | 'stderr', payload: Buffer): void {
    this.delivered += payload.length;
    this.emit(this.decoders[stream].write(payload), stream);
  }

  end(): void {
    for (const stream of ['stdout', 'stderr'] as const) this.emit(this.decoders[stream].end(), stream);
  }

  private emit(text: string, stream: 'stdout' | 'stderr'): void {
    if (!text || !this.onLog) return;
    try {
      this.onLog(text, stream);
    } catch {
      // a failing log consumer does not stop the job
    }
  }
}

function exitResult(code: number | null): ContainerJobResult {
  if (code === 0) return { status: 'succeeded', exitCode: 0, message: null };
  return { status: 'failed', exitCode: code, message: code === null ? 'the container ended without an exit code' : `exit code ${code}` };
}

function failed(message: string): ContainerJobResult {
  return { status: 'failed', exitCode: null, message };
}

/** Cancelled; runContainerJob turns it into timed_out when the time-out stopped the job. */
function aborted(): ContainerJobResult {
  return { status: 'cancelled', exitCode: null, message: 'cancelled' };
}

function jobName(name: string | undefined): string {
  const slug = (name ?? 'conveyor-job').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48) || 'conveyor-job';
  return `${slug}-${randomBytes(3).toString('hex')}`;
}

function envList(env: Record<string, string> | undefined): string[] {
  return Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`);
}

function onAbort(signal: AbortSignal): { promise: Promise<undefined>; dispose(): void } {
  let listener = () => undefined as void;
  const promise = new Promise<undefined>((resolve) => {
    listener = () => resolve(undefined);
    if (signal.aborted) resolve(undefined);
    else signal.addEventListener('abort', listener, { once: true });
  });
  return { promise, dispose: () => signal.removeEventListener('abort', listener) };
}
