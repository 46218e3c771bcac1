import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import Docker from 'dockerode';
import { probeRegistry } from '../../agent/runtimes/registry';

/** The registry test/setup/40-docker.sh starts. */
export const REGISTRY = process.env.CONVEYOR_TEST_REGISTRY ?? '127.0.0.1:5000';
/** The label every image and container a test makes carries, so that after hooks remove them. */
export const TEST_LABEL = 'conveyor.test';
/** Build contexts of test/fixtures/images (source folder: the compiled tests run from out/). */
export const IMAGE_FIXTURES = path.resolve(__dirname, '../../../test/fixtures/images');

export function dockerClient(): Docker {
  return new Docker();
}

/** Whether dockerd and the registry answer. */
export async function dockerStatus(docker = dockerClient()): Promise<{ docker: boolean; registry: boolean }> {
  const up = await docker.ping().then(
    () => true,
    () => false,
  );
  return { docker: up, registry: (await probeRegistry(REGISTRY)).ok };
}

/** Throws, saying how to provision, when dockerd, the registry or the base images are missing. */
export async function requireDocker(docker = dockerClient()): Promise<void> {
  const s = await dockerStatus(docker);
  const missing: string[] = [];
  if (!s.docker) missing.push('dockerd does not answer on /var/run/docker.sock');
  if (!s.registry) missing.push(`the registry does not answer on http://${REGISTRY}/v2/`);
  if (s.docker) {
    for (const image of ['conveyor-test/busybox:1', 'conveyor-test/node:20']) {
      await docker
        .getImage(image)
        .inspect()
        .catch(() => missing.push(`the base image ${image} is missing`));
    }
  }
  if (missing.length) throw new Error(`${missing.join('; ')}: run \`bash test/provision.sh\` (test/setup/40-docker.sh) first`);
}

/** A fresh value for TEST_LABEL, one per suite. */
export function testRunLabel(suite: string): string {
  return `${suite}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** Removes every container and image carrying TEST_LABEL=value. */
export async function removeByLabel(docker: Docker, value: string): Promise<void> {
  const filters = { label: [`${TEST_LABEL}=${value}`] };
  const containers = await docker.listContainers({ all: true, filters }).catch(() => []);
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  const images = await docker.listImages({ all: true, filters }).catch(() => []);
  for (const image of images) {
    // Remove the image and each of its names (repository:tag, repository@digest).
    for (const ref of [...(image.RepoTags ?? []), ...(image.RepoDigests ?? [])].filter((r) => !r.startsWith('<none>'))) {
      await docker.getImage(ref).remove({ force: true }).catch(() => undefined);
    }
    await docker.getImage(image.Id).remove({ force: true }).catch(() => undefined);
  }
}

/** A copy of an image fixture in a temporary folder, which the test may add files to. */
export function copyFixture(name: string): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `conveyor-image-${name}-`)));
  fs.cpSync(path.join(IMAGE_FIXTURES, name), dir, { recursive: true });
  return dir;
}

/** A repository in the test registry with a name no other run uses. */
export function uniqueRepository(name: string): string {
  return `${REGISTRY}/conveyor-test-${name}-${randomBytes(4).toString('hex')}`;
}

/** Runs the docker CLI; resolves with stdout, rejects with stderr. */
export function dockerCli(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { encoding: 'utf8', maxBuffer: 16 << 20, env: { ...process.env, DOCKER_BUILDKIT: '0' } }, (e, stdout, stderr) => {
      if (e) reject(new Error(`docker ${args.join(' ')}: ${stderr.trim() || e.message}`));
      else resolve(stdout);
    });
  });
}

/** A free TCP port on 127.0.0.1 (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** GET http://address/path with a new connection: status and body, or the error's code. */
export function httpGet(address: string, urlPath = '/', timeoutMs = 2000): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const req = http.get({ host, port, path: urlPath, agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
}

/**
 * A stand-in for the agent's switch: a TCP proxy on 127.0.0.1:publicPort whose upstream
 * `route()` changes. New connections go to the new upstream; open ones finish where they are.
 */
export class TcpSwitch {
  private upstream: string | null = null;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  readonly routes: string[] = [];

  constructor(readonly publicPort: number) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      const target = this.upstream;
      if (!target) {
        client.destroy();
        return;
      }
      const i = target.lastIndexOf(':');
      const up = net.connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
      this.sockets.add(up);
      up.on('close', () => this.sockets.delete(up));
      client.pipe(up).pipe(client);
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.publicPort, '127.0.0.1', () => resolve());
    });
  }

  /** The RuntimeServices.route of the tests. */
  route = async (_environment: string, publicPort: number, upstream: string): Promise<void> => {
    if (publicPort !== this.publicPort) throw new Error(`this switch serves ${this.publicPort}, not ${publicPort}`);
    this.upstream = upstream;
    this.routes.push(upstream);
  };

  get address(): string {
    return `127.0.0.1:${this.publicPort}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/**
 * Sends GET requests one after another (a new connection each) until stopped, and counts what
 * failed: connection errors and answers other than 200.
 */
export class RequestLoop {
  private running = false;
  private done: Promise<void> = Promise.resolve();
  sent = 0;
  readonly failures: string[] = [];
  readonly bodies = new Map<string, number>();

  constructor(
    private readonly address: string,
    private readonly urlPath = '/version',
    private readonly maxRequests = 100_000,
    /** Between two requests, so that the loop is steady traffic and not a flood. */
    private readonly pauseMs = 5,
  ) {}

  start(): void {
    this.running = true;
    this.done = (async () => {
      while (this.running && this.sent < this.maxRequests) {
        this.sent++;
        const r = await httpGet(this.address, this.urlPath);
        if ('error' in r) this.failures.push(r.error);
        else if (r.status !== 200) this.failures.push(`HTTP ${r.status}`);
        else this.bodies.set(r.body.trim(), (this.bodies.get(r.body.trim()) ?? 0) + 1);
        if (this.pauseMs) await new Promise((res) => setTimeout(res, this.pauseMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/**
 * Restarts the Docker daemon the way test/setup/40-docker.sh started it (SIGTERM, then a new
 * dockerd with the same log), and waits until it answers again. Containers with a restart
 * policy come back on their own.
 */
export async function restartDockerd(docker = dockerClient()): Promise<void> {
  const pids = await new Promise<number[]>((resolve) => execFile('pidof', ['dockerd'], (_e, out) => resolve(String(out).trim().split(/\s+/).filter(Boolean).map(Number))));
  if (pids.length === 0) throw new Error('no dockerd runs: run `bash test/provision.sh` first');
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const gone = (pid: number) => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  };
  for (let i = 0; i < 600 && !pids.every(gone); i++) await new Promise((r) => setTimeout(r, 100));
  if (!pids.every(gone)) throw new Error('dockerd did not stop within 60 s');
  const cache = process.env.CONVEYOR_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'conveyor-test');
  fs.mkdirSync(path.join(cache, 'docker'), { recursive: true });
  const log = fs.openSync(path.join(cache, 'docker', 'dockerd.log'), 'a');
  const { spawn } = await import('node:child_process');
  const child = spawn('/usr/sbin/dockerd', [], { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  fs.closeSync(log);
  fs.writeFileSync(path.join(cache, 'docker', 'dockerd.pid'), String(child.pid));
  for (let i = 0; i < 600; i++) {
    if (await docker.ping().then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`dockerd did not answer within 60 s after a restart (see ${path.join(cache, 'docker', 'dockerd.log')})`);
}
