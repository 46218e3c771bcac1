import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import type { Release } from '../protocol';
import { isAlive } from '../util/process';

/**
 * Files artifacts, made ready to run: a release's artifact (a file in the agent's store, named by
 * its sha256) becomes a folder under the runtime's state folder, once per release.
 *
 *   <artifactsDir>/sha256/<hex>  ──verify sha256──>  <stateDir>/releases/<env>/<n>-<hex12>/
 *
 * `.tgz`, `.tar.gz` and `.tar` are unpacked; any other file is copied into the folder under its
 * own name. The folder appears whole or not at all (it is filled under a temporary name, then
 * renamed), and a folder that exists is used as it is.
 */

export class UnpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnpackError';
  }
}

export type ArtifactFormat = 'tar' | 'tar.gz' | 'file';

export interface UnpackRequest {
  /** The agent's artifact store: the file is `<artifactsDir>/sha256/<hex>`. */
  artifactsDir: string;
  /** `sha256:<hex>` */
  digest: string;
  /** The artifact's file name (dist/hello-service.tgz): its ending picks the format. */
  name: string;
  /** The folder to create. */
  dest: string;
  /** For a single file: make it executable. */
  executable?: boolean;
}

export interface Unpacked {
  dir: string;
  format: ArtifactFormat;
  /** False when the folder was already there. */
  created: boolean;
}

/** `sha256:<hex>` → the hex, or an error naming what is wrong. */
export function digestHex(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new UnpackError(`"${digest}" is not a sha256 digest (sha256:<64 hex digits>)`);
  return m[1];
}

/** Where the agent's store keeps a files artifact. */
export function artifactFile(artifactsDir: string, digest: string): string {
  return path.join(artifactsDir, 'sha256', digestHex(digest));
}

/** A name safe as one path segment: the environment's name when it is one, else a readable hash. */
export function safeSegment(name: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) return name;
  const clean = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[.-]+/, '').slice(0, 40);
  return `${clean || 'env'}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

/** `<stateDir>/releases/<env>/<release number>-<hex12>` */
export function releaseDir(stateDir: string, environment: string, releaseNumber: number, digest: string): string {
  return path.join(stateDir, 'releases', safeSegment(environment), `${releaseNumber}-${digestHex(digest).slice(0, 12)}`);
}

export function formatOf(name: string): ArtifactFormat {
  const lower = name.toLowerCase();
  if (lower.endsWith('.tgz') || lower.endsWith('.tar.gz')) return 'tar.gz';
  if (lower.endsWith('.tar')) return 'tar';
  return 'file';
}

/** Unpacks a release's files artifact into its folder under `stateDir` (see releaseDir). */
export function unpackRelease(
  dirs: { artifactsDir: string; stateDir: string },
  release: Release,
  opts: { executable?: boolean } = {},
): Promise<Unpacked> {
  if (release.artifact.kind !== 'files') {
    return Promise.reject(new UnpackError(`release ${release.number} runs an image (${release.artifact.repository}), not files`));
  }
  return unpackArtifact({
    artifactsDir: dirs.artifactsDir,
    digest: release.artifact.digest,
    name: release.artifact.name,
    dest: releaseDir(dirs.stateDir, release.environment, release.number, release.artifact.digest),
    executable: opts.executable,
  });
}

const inFlight = new Map<string, Promise<Unpacked>>();

/**
 * Verifies the stored file's sha256, then unpacks it into `dest` (see the module comment). Calls
 * for the same `dest` at the same time share one unpack. Refuses (UnpackError) entries whose path
 * leaves the folder, links that point outside it, and device files.
 */
export function unpackArtifact(req: UnpackRequest): Promise<Unpacked> {
  const dest = path.resolve(req.dest);
  const running = inFlight.get(dest);
  if (running) return running;
  const p = doUnpack({ ...req, dest }).finally(() => inFlight.delete(dest));
  inFlight.set(dest, p);
  return p;
}

async function doUnpack(req: UnpackRequest): Promise<Unpacked> {
  const format = formatOf(req.name);
  if (fs.existsSync(req.dest)) return { dir: req.dest, format, created: false };
  const file = artifactFile(req.artifactsDir, req.digest);
  if (!fs.existsSync(file)) {
    throw new UnpackError(`the artifact ${req.name} (${req.digest}) is not in the agent's store (${path.dirname(file)}): run the pipeline that makes it again`);
  }
  const actual = await sha256File(file);
  if (`sha256:${actual}` !== req.digest) {
    throw new UnpackError(`the stored artifact ${req.name} (${req.digest}) is damaged: its content hashes to sha256:${actual}; run the pipeline that makes it again`);
  }

  const parent = path.dirname(req.dest);
  fs.mkdirSync(parent, { recursive: true });
  removeAbandoned(parent, path.basename(req.dest));
  const tmp = path.join(parent, `.${path.basename(req.dest)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(tmp, { mode: 0o755 });
  try {
    if (format === 'file') {
      const name = path.basename(req.name) || 'artifact';
      const target = path.join(tmp, name);
      fs.copyFileSync(file, target);
      fs.chmodSync(target, req.executable ? 0o755 : 0o644);
    } else {
      await extractTar(file, format === 'tar.gz', tmp, req.name);
    }
    try {
      fs.renameSync(tmp, req.dest);
    } catch (e) {
      // Another agent process made it meanwhile: theirs is as good as ours.
      if (!fs.existsSync(req.dest)) throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
      return { dir: req.dest, format, created: false };
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: req.dest, format, created: true };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/** Temporary folders left by an unpack that did not finish (its process is gone). */
function removeAbandoned(parent: string, base: string): void {
  const prefix = `.${base}.partial-`;
  for (const name of fs.readdirSync(parent)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (pid === process.pid || isAlive(pid)) continue;
    fs.rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}

async function extractTar(file: string, gzipped: boolean, root: string, artifactName: string): Promise<void> {
  const realRoot = fs.realpathSync(root);
  const inside = (p: string) => p === realRoot || p.startsWith(realRoot + path.sep);
  const refuse = (why: string) => new UnpackError(`refused to unpack ${artifactName}: ${why}`);
  const links: { at: string; entry: string }[] = [];
  const dirModes: { dir: string; mode: number }[] = [];

  /** The real folder an entry goes into (made if missing), refused when it is outside the root. */
  const folderFor = (entryName: string, rel: string): string => {
    const dir = resolvePhysical(path.join(realRoot, path.dirname(rel)));
    if (!inside(dir)) throw refuse(`"${entryName}" would be written outside the release folder (through a link)`);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  };
  /** Clears the way for a new entry at `target` (a later entry replaces an earlier one, as tar does). */
  const clear = (entryName: string, target: string, isDir: boolean): boolean => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(target);
    } catch {
      return true;
    }
    if (st.isDirectory()) {
      if (isDir) return false;
      throw refuse(`"${entryName}" would replace a folder of the same name`);
    }
    fs.unlinkSync(target);
    return true;
  };

  const extract = tar.extract();
  const source = fs.createReadStream(file);
  const feeding = gzipped ? pipeline(source, zlib.createGunzip(), extract) : pipeline(source, extract);
  feeding.catch(() => undefined);
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = entryPath(h.name);
      if (rel === null) throw refuse(`"${h.name}" is a path outside the release folder`);
      if (rel === '') {
        entry.resume();
        continue;
      }
      switch (h.type) {
        case 'directory': {
          const dir = path.join(folderFor(h.name, rel), path.basename(rel));
          if (clear(h.name, dir, true)) fs.mkdirSync(dir);
          dirModes.push({ dir, mode: ((h.mode ?? 0o755) & 0o777) | 0o700 });
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file':
        case null:
        case undefined: {
          const target = path.join(folderFor(h.name, rel), path.basename(rel));
          clear(h.name, target, false);
          await pipeline(entry, fs.createWriteStream(target, { flags: 'wx', mode: (h.mode ?? 0o644) & 0o777 }));
          break;
        }
        case 'symlink': {
          const linkname = h.linkname ?? '';
          if (!linkname || path.isAbsolute(linkname)) throw refuse(`the link "${h.name}" points to "${linkname}", outside the release folder`);
          const at = path.join(folderFor(h.name, rel), path.basename(rel));
          if (!inside(resolvePhysical(path.join(path.dirname(at), linkname)))) {
            throw refuse(`the link "${h.name}" points to "${linkname}", outside the release folder`);
          }
          clear(h.name, at, false);
          fs.symlinkSync(linkname, at);
          links.push({ at, entry: h.name });
          entry.resume();
          break;
        }
        case 'link': {
          const targetRel = entryPath(h.linkname ?? '');
          const source = targetRel ? resolvePhysical(path.join(realRoot, targetRel)) : null;
          if (!source || !inside(source)) throw refuse(`the hard link "${h.name}" points to "${h.linkname}", outside the release folder`);
          const at = path.join(folderFor(h.name, rel), path.basename(rel));
          clear(h.name, at, false);
          fs.linkSync(source, at);
          entry.resume();
          break;
        }
        case 'character-device':
        case 'block-device':
        case 'fifo':
          throw refuse(`"${h.name}" is a ${h.type}; a release holds files, folders and links only`);
        default:
          // Headers tar-stream does not fold in itself (pax globals): nothing to write.
          entry.resume();
      }
    }
    await feeding;
  } catch (e) {
    extract.destroy();
    source.destroy();
    if (e instanceof UnpackError) throw e;
    const why = (e as Error).message;
    throw new UnpackError(`could not unpack ${artifactName}: ${gzipped && /header|gzip|zlib/i.test(why) ? `it is not a gzipped tar (${why})` : why}`);
  }
  // A link checked when it was made could point elsewhere once later entries landed: check the
  // finished tree as the kernel would follow it.
  for (const l of links) {
    if (!inside(resolvePhysical(l.at))) throw refuse(`the link "${l.entry}" leads outside the release folder`);
  }
  for (const d of dirModes.reverse()) fs.chmodSync(d.dir, d.mode);
}

/** An entry's path relative to the root ('' for the root itself), or null when it leaves the root. */
function entryPath(name: string): string | null {
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name) || name.includes('\0')) return null;
  const norm = path.posix.normalize(name.replace(/\\/g, '/'));
  if (norm === '..' || norm.startsWith('../')) return null;
  const rel = norm.replace(/^\.\/?/, '').replace(/\/+$/, '');
  return rel === '.' ? '' : rel;
}

/**
 * The path the kernel would reach for `p`, following links one component at a time (so `a/..`
 * after a link `a` goes where the link leads, not back). Parts that do not exist yet are taken
 * as they are written.
 */
export function resolvePhysical(p: string): string {
  let pending = p.split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = '/' + [...done, part].join('/');
    let isLink = false;
    try {
      isLink = fs.lstatSync(candidate).isSymbolicLink();
    } catch {
      // Not there (yet): taken as written.
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++hops > 40) throw new UnpackError(`too many levels of links at ${candidate}`);
    const target = fs.readlinkSync(candidate);
    if (target.startsWith('/')) done.length = 0;
    pending = [...target.split('/').filter(Boolean), ...pending];
  }
  return '/' + done.join('/');
}
