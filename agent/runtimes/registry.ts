import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { err, ok, type Result } from '../util/lifecycle';

/** Where images go when conveyor.yml names no registry. */
export const DEFAULT_REGISTRY = '127.0.0.1:5000';
/** Debian's `docker-registry` package (distribution 2.x). */
export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export interface LocalRegistryOptions {
  /** host:port of the registry. Default 127.0.0.1:5000. */
  address?: string;
  /** The agent's folder; a registry it starts keeps its config, storage and log in <stateDir>/registry. */
  stateDir: string;
  /** Start one when nothing answers (only on a loopback address). Default true. */
  start?: boolean;
  /** The registry program. Default /usr/bin/docker-registry. */
  binary?: string;
  /** How long a started registry has to answer. Default 10 s. */
  timeoutMs?: number;
}

export interface LocalRegistry {
  address: string;
  /** False when one already answered. */
  started: boolean;
  /** The process the call started (it outlives the agent, like a daemon), else null. */
  pid: number | null;
}

export type RegistryProbe = { ok: true; status: number } | { ok: false; reason: string };

/**
 * Asks `GET http://<address>/v2/`. Any HTTP answer (200, or 401 from a registry with auth)
 * means a registry is there.
 */
export function probeRegistry(address: string, timeoutMs = 2000): Promise<RegistryProbe> {
  return new Promise((resolve) => {
    const req = http.get(`http://${address}/v2/`, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve({ ok: true, status: res.statusCode ?? 0 });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, reason: e.code === 'ETIMEDOUT' ? e.message : (e.code ?? e.message) }));
  });
}

/** The error for a registry nothing answers on, with how to get one. */
export function registryUnreachableMessage(address: string, why: string): string {
  return (
    `the registry at ${address} is unreachable: ${why}; start one with ` +
    `\`docker-registry serve CONFIG\` (Debian package docker-registry; a config with http.addr: ${address} and no auth) ` +
    `or \`docker run -d -p ${address}:5000 registry:2\`, or set the environment's registry to one that runs`
  );
}

/**
 * The local default: a registry on 127.0.0.1:5000 that the agent starts itself when asked. If
 * something answers on the address, that is the registry. Otherwise, when the address is on this
 * machine and docker-registry is installed, it starts one (storage under the agent's folder,
 * no auth, listening on the address only) and waits until it answers.
 */
export async function ensureLocalRegistry(opts: LocalRegistryOptions): Promise<Result<LocalRegistry, string>> {
  const address = opts.address ?? DEFAULT_REGISTRY;
  const first = await probeRegistry(address);
  if (first.ok) return ok({ address, started: false, pid: null });
  if (opts.start === false) return err(registryUnreachableMessage(address, first.reason));

  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    return err(registryUnreachableMessage(address, `${first.reason} (the agent starts registries only on this machine)`));
  }
  const binary = opts.binary ?? REGISTRY_BINARY;
  if (!fs.existsSync(binary)) {
    return err(registryUnreachableMessage(address, `${first.reason}, and ${binary} is not installed (apt-get install docker-registry)`));
  }

  const dir = path.join(opts.stateDir, 'registry');
  const storage = path.join(dir, 'storage');
  fs.mkdirSync(storage, { recursive: true });
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(storage)}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${JSON.stringify(address)}`,
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, 'registry.log');
  const log = fs.openSync(logFile, 'a');
  let exited: string | null = null;
  let pid: number | null = null;
  try {
    const child = spawn(binary, ['serve', config], { detached: true, stdio: ['ignore', log, log] });
    child.on('error', (e) => (exited = e.message));
    child.on('exit', (code, sig) => (exited = sig ? `killed by ${sig}` : `exited with code ${code}`));
    child.unref();
    pid = child.pid ?? null;
  } finally {
    fs.closeSync(log);
  }
  if (pid !== null) fs.writeFileSync(path.join(dir, 'registry.pid'), `${pid}\n`);

  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: RegistryProbe = first;
  while (Date.now() < deadline) {
    last = await probeRegistry(address, 1000);
    if (last.ok) return ok({ address, started: true, pid });
    if (exited) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!exited && pid !== null) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
  const tail = readTail(logFile, 5);
  const why = exited ? `${binary} ${exited}` : `${binary} started but did not answer within ${Math.round((opts.timeoutMs ?? 10_000) / 1000)}s`;
  return err(registryUnreachableMessage(address, `${why}${tail ? ` (${logFile}: ${tail})` : ''}`));
}

function readTail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  }
}
