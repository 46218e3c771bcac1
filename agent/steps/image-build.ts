import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import * as tar from 'tar-stream';
import { describeDockerError, isDaemonUnreachable, readJsonLines, type DockerProgress } from '../runtimes/docker';
import { probeRegistry, registryUnreachableMessage } from '../runtimes/registry';
import { err, ok, type Result } from '../util/lifecycle';

export interface BuildImageOptions {
  /** The build context: a folder of the run's snapshot. */
  contextDir: string;
  /** The Dockerfile, relative to contextDir (or absolute). Default "Dockerfile". */
  dockerfile?: string;
  /** Where the image is pushed, with the registry: 127.0.0.1:5000/hello. */
  repository: string;
  tag: string;
  /** Labels of the image (see imageLabels: commit, run, pipeline). */
  labels?: Record<string, string>;
  buildArgs?: Record<string, string>;
  /** Each line of the build's and the push's output, as it comes. */
  onLog?: (line: string) => void;
  /** Aborting stops the build (the daemon cancels it when the request goes) or the push. */
  signal?: AbortSignal;
  /** Default: the daemon of DOCKER_HOST or /var/run/docker.sock. */
  docker?: Docker;
  /**
   * The modification time every file of the context gets in the build, so that the same commit
   * gives the same layers wherever it is checked out. Default 2000-01-01T00:00:00Z.
   */
  mtime?: Date;
}

export interface BuiltImage {
  repository: string;
  tag: string;
  /** The registry's manifest digest (sha256:...): the release's `repository@digest`. */
  digest: string;
  /** The local image id (sha256:... of the image config). */
  imageId: string;
}

export interface ImageBuildError {
  /** One line: "the build failed: The command '/bin/sh -c exit 3' returned a non-zero code: 3", "cancelled", ... */
  reason: string;
  /** What the build and push printed (the last MiB of it). */
  log: string;
}

const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');
const LOG_LIMIT = 1024 * 1024;

/** The labels a run's image carries, so that `docker image ls --filter label=conveyor.run=42` finds it. */
export function imageLabels(x: { commit?: string | null; runId?: number | null; pipeline?: string | null }): Record<string, string> {
  const labels: Record<string, string> = {};
  if (x.commit) labels['conveyor.commit'] = x.commit;
  if (x.runId !== undefined && x.runId !== null) labels['conveyor.run'] = String(x.runId);
  if (x.pipeline) labels['conveyor.pipeline'] = x.pipeline;
  return labels;
}

/**
 * Builds an image from a folder (offline: the daemon's legacy builder, a tar of the folder that
 * honours .dockerignore), tags it repository:tag, pushes it and returns the registry's digest.
 * Expected failures (the build fails, no daemon, the registry is down, cancelled) are values.
 */
export async function buildImage(opts: BuildImageOptions): Promise<Result<BuiltImage, ImageBuildError>> {
  const docker = opts.docker ?? new Docker();
  const log = new LogBuffer(opts.onLog);
  const { repository, tag, signal } = opts;
  const image = `${repository}:${tag}`;
  const cancelled = () => err({ reason: 'cancelled', log: log.text() });

  // 1. The daemon and the registry, before spending time on the build.
  try {
    await (docker.ping as unknown as (o: { abortSignal?: AbortSignal }) => Promise<unknown>).call(docker, { abortSignal: signal });
  } catch (e) {
    if (signal?.aborted) return cancelled();
    return err({ reason: describeDockerError(docker, e), log: '' });
  }
  const registry = registryOf(repository);
  if (registry && isLoopback(registry)) {
    const probe = await probeRegistry(registry);
    if (!probe.ok) return err({ reason: registryUnreachableMessage(registry, probe.reason), log: '' });
  }

  // 2. The context, streamed as a tar while the daemon reads it.
  let context: Context;
  try {
    context = await readContext(opts.contextDir, opts.dockerfile ?? 'Dockerfile');
  } catch (e) {
    return err({ reason: (e as Error).message, log: '' });
  }
  const body = packContext(context, opts.mtime ?? FIXED_MTIME);

  // 3. Build.
  let buildError = null as string | null;
  let imageId = null as string | null;
  try {
    const stream = (await docker.buildImage(body as unknown as NodeJS.ReadableStream, {
      t: image,
      dockerfile: context.dockerfile,
      labels: opts.labels ?? {},
      buildargs: opts.buildArgs,
      rm: true,
      forcerm: true,
      pull: false,
      // The daemon's own builder: offline, no BuildKit session.
      version: '1',
      abortSignal: signal,
    })) as NodeJS.ReadableStream;
    await readJsonLines(stream, (msg) => {
      if (msg.stream) log.write(msg.stream);
      else if (msg.status && !msg.progressDetail) log.write(`${msg.id ? `${msg.id}: ` : ''}${msg.status}\n`);
      if (msg.aux && typeof msg.aux.ID === 'string') imageId = msg.aux.ID;
      if (msg.error) {
        buildError = msg.errorDetail?.message ?? msg.error;
        log.write(`${buildError}\n`);
      }
    });
  } catch (e) {
    body.destroy();
    if (signal?.aborted) return cancelled();
    const reason = isDaemonUnreachable(e) ? describeDockerError(docker, e) : `the build failed: ${describeDockerError(docker, e)}`;
    return err({ reason, log: log.text() });
  }
  if (signal?.aborted) return cancelled();
  if (buildError !== null) return err({ reason: `the build failed: ${oneLine(buildError)}`, log: log.text() });

  try {
    imageId = (await docker.getImage(image).inspect()).Id;
  } catch (e) {
    if (!imageId) return err({ reason: `the build ended but ${image} is not there: ${describeDockerError(docker, e)}`, log: log.text() });
  }

  // 4. Push, and read the digest the registry gave the manifest.
  log.write(`pushing ${image}\n`);
  let digest = null as string | null;
  let pushError = null as string | null;
  try {
    const stream = (await docker.getImage(repository).push({
      tag,
      // The daemon wants the header even for a registry without auth.
      authconfig: {} as Docker.AuthConfig,
      abortSignal: signal,
    })) as NodeJS.ReadableStream;
    await readJsonLines(stream, (msg: DockerProgress & { progressDetail?: unknown }) => {
      if (msg.error) {
        pushError = msg.errorDetail?.message ?? msg.error;
        log.write(`${pushError}\n`);
        return;
      }
      if (msg.aux && typeof msg.aux.Digest === 'string') digest = msg.aux.Digest;
      if (msg.status) {
        const m = /digest: (sha256:[0-9a-f]{64})/.exec(msg.status);
        if (m && !digest) digest = m[1];
        if (!['Preparing', 'Waiting', 'Pushing'].includes(msg.status)) log.write(`${msg.id ? `${msg.id}: ` : ''}${msg.status}\n`);
      }
    });
  } catch (e) {
    if (signal?.aborted) return cancelled();
    return err({ reason: `could not push ${image}: ${describeDockerError(docker, e)}`, log: log.text() });
  }
  if (signal?.aborted) return cancelled();
  if (pushError !== null) {
    const e = pushError;
    const reason =
      registry && /connection refused|no such host|dial tcp|i\/o timeout|EOF$/i.test(e)
        ? registryUnreachableMessage(registry, oneLine(e))
        : `could not push ${image}: ${oneLine(e)}`;
    return err({ reason, log: log.text() });
  }
  if (!digest) return err({ reason: `the push of ${image} ended without a digest`, log: log.text() });
  log.flush();
  return ok({ repository, tag, digest, imageId: imageId! });
}

// -- the context -------------------------------------------------------------------------------

interface ContextEntry {
  /** Path inside the context, with '/'. */
  name: string;
  abs: string;
  stat: fs.Stats;
}

interface Context {
  entries: ContextEntry[];
  /** The Dockerfile's name inside the tar. */
  dockerfile: string;
  /** A Dockerfile from outside the folder, added under `dockerfile`. */
  extra?: { name: string; abs: string };
}

async function readContext(contextDir: string, dockerfile: string): Promise<Context> {
  const root = path.resolve(contextDir);
  const st = await fs.promises.stat(root).catch(() => null);
  if (!st?.isDirectory()) throw new Error(`the build context ${contextDir} is not a folder`);
  const dfAbs = path.resolve(root, dockerfile);
  if (!fs.existsSync(dfAbs)) throw new Error(`there is no Dockerfile at ${dfAbs}`);
  const relDf = path.relative(root, dfAbs).split(path.sep).join('/');
  const inside = !relDf.startsWith('../') && !path.isAbsolute(relDf);

  let patterns: string[] = [];
  try {
    patterns = parseDockerignore(await fs.promises.readFile(path.join(root, '.dockerignore'), 'utf8'));
  } catch {
    // no .dockerignore
  }
  // As the docker CLI does: the Dockerfile and .dockerignore are always sent.
  patterns.push('!.dockerignore');
  if (inside) patterns.push(`!${relDf}`);
  const matcher = new DockerignoreMatcher(patterns);

  const entries: ContextEntry[] = [];
  const walk = async (rel: string) => {
    const dir = rel ? path.join(root, rel) : root;
    const names = (await fs.promises.readdir(dir)).sort();
    for (const name of names) {
      const relPath = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, name);
      const stat = await fs.promises.lstat(abs);
      const excluded = matcher.matches(relPath);
      if (stat.isDirectory()) {
        if (excluded && !matcher.mayIncludeUnder(relPath)) continue;
        if (!excluded) entries.push({ name: relPath, abs, stat });
        await walk(relPath);
      } else if (!excluded && (stat.isFile() || stat.isSymbolicLink())) {
        entries.push({ name: relPath, abs, stat });
      }
    }
  };
  await walk('');
  if (inside) return { entries, dockerfile: relDf };
  const name = '.conveyor.Dockerfile';
  return { entries, dockerfile: name, extra: { name, abs: dfAbs } };
}

/** A tar of the context, produced while the daemon reads it (back-pressure included). */
function packContext(context: Context, mtime: Date): PassThrough {
  const pack = tar.pack();
  const out = new PassThrough();
  pack.pipe(out);
  let reading: fs.ReadStream | null = null;
  // The daemon went away or the build was cancelled: stop reading files.
  out.on('close', () => {
    reading?.destroy();
    pack.destroy();
  });
  const addFile = (name: string, abs: string, stat: fs.Stats) =>
    new Promise<void>((resolve, reject) => {
      const entry = pack.entry({ name, size: stat.size, mode: stat.mode & 0o7777, mtime, uid: 0, gid: 0, type: 'file' }, (e) => (e ? reject(e) : resolve()));
      const src = (reading = fs.createReadStream(abs));
      src.on('error', reject);
      src.on('close', () => {
        if (!src.readableEnded) reject(new Error('stopped'));
      });
      src.pipe(entry);
    });
  void (async () => {
    for (const e of context.entries) {
      if (out.destroyed) return;
      if (e.stat.isDirectory()) {
        pack.entry({ name: e.name, type: 'directory', mode: e.stat.mode & 0o7777, mtime, uid: 0, gid: 0 });
      } else if (e.stat.isSymbolicLink()) {
        pack.entry({ name: e.name, type: 'symlink', linkname: await fs.promises.readlink(e.abs), mode: 0o777, mtime, uid: 0, gid: 0 });
      } else {
        await addFile(e.name, e.abs, e.stat);
      }
    }
    if (context.extra) await addFile(context.extra.name, context.extra.abs, await fs.promises.stat(context.extra.abs));
    pack.finalize();
  })().catch((e: Error) => {
    if (!out.destroyed) out.destroy(new Error(`could not read the build context: ${e.message}`));
  });
  return out;
}

// -- .dockerignore -------------------------------------------------------------------------------

/** The lines of a .dockerignore: comments and blank lines dropped, each pattern cleaned. */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    let neg = false;
    if (line.startsWith('!')) {
      neg = true;
      line = line.slice(1).trim();
    }
    line = path.posix.normalize(line);
    if (line.length > 1 && line.startsWith('/')) line = line.slice(1);
    if (line.endsWith('/') && line.length > 1) line = line.slice(0, -1);
    out.push(neg ? `!${line}` : line);
  }
  return out;
}

/**
 * Docker's .dockerignore rules: patterns are paths from the context's root with `*`, `?`, `[...]`
 * and `**`; a pattern that matches a folder excludes what is inside it; `!` re-includes; the
 * last matching pattern wins.
 */
export class DockerignoreMatcher {
  private readonly patterns: { re: RegExp; dirs: number; negate: boolean; text: string }[];

  constructor(patterns: string[]) {
    this.patterns = patterns.map((p) => {
      const negate = p.startsWith('!');
      const text = negate ? p.slice(1) : p;
      return { re: patternToRegExp(text), dirs: text.split('/').length, negate, text };
    });
  }

  /** True when the path (relative, with '/') is left out of the context. */
  matches(file: string): boolean {
    const parents = file.split('/').slice(0, -1);
    let matched = false;
    for (const p of this.patterns) {
      let m = p.re.test(file);
      if (!m && parents.length && p.dirs <= parents.length) m = p.re.test(parents.slice(0, p.dirs).join('/'));
      if (m) matched = !p.negate;
    }
    return matched;
  }

  /** Whether an excluded folder may still hold re-included files (so it must be walked). */
  mayIncludeUnder(dir: string): boolean {
    return this.patterns.some((p) => p.negate && `${p.text}/`.startsWith(`${dir}/`));
  }
}

function patternToRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') i++;
        re += i + 1 >= pattern.length ? '.*' : '(.*/)?';
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '\\' && i + 1 < pattern.length) {
      i++;
      re += escapeRe(pattern[i]);
    } else if (c === '[') {
      const close = pattern.indexOf(']', i + 1);
      if (close < 0) {
        re += '\\[';
      } else {
        let cls = pattern.slice(i + 1, close);
        if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else {
      re += escapeRe(c);
    }
  }
  return new RegExp(`${re}$`);
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

// -- small things ------------------------------------------------------------------------------

/** The registry part of a repository (127.0.0.1:5000/hello → 127.0.0.1:5000), or null for Docker Hub names. */
export function registryOf(repository: string): string | null {
  const first = repository.split('/')[0];
  if (!repository.includes('/')) return null;
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : null;
}

function isLoopback(address: string): boolean {
  const host = address.includes(':') ? address.slice(0, address.lastIndexOf(':')) : address;
  return ['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host) || host.startsWith('127.');
}

function oneLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? text.trim();
}

/** Splits streamed text into lines for onLog and keeps the last MiB for the result. */
class LogBuffer {
  private partial = '';
  private chunks: string[] = [];
  private size = 0;

  constructor(private readonly onLog?: (line: string) => void) {}

  write(text: string): void {
    this.chunks.push(text);
    this.size += text.length;
    while (this.size > LOG_LIMIT && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
    if (!this.onLog) return;
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) this.emit(l);
  }

  flush(): void {
    if (this.partial) this.emit(this.partial);
    this.partial = '';
  }

  text(): string {
    this.flush();
    return this.chunks.join('');
  }

  private emit(line: string): void {
    try {
      this.onLog!(line.replace(/\r$/, ''));
    } catch {
      // a listener's fault is not the build's
    }
  }
}
