import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../support/docker';
import { until, type TempRepo } from '../support/fixtures';

const REGISTRY_BIN = '/usr/bin/docker-registry';

/**
 * A registry of the suite's own, run the way test/setup/40-docker.sh runs the shared one
 * (`docker-registry serve config.yml`, no auth) but on its own port and storage, so that stopping
 * it mid-push takes nothing away from other suites. Docker pushes to 127.0.0.0/8 over plain HTTP.
 */
export class OwnRegistry {
  readonly dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-registry-')));
  private child: ChildProcess | undefined;
  port = 0;

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts it (again, on the same port and storage) and waits until /v2/ answers. */
  async start(): Promise<void> {
    if (!fs.existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing: run \`bash test/provision.sh\` (test/setup/40-docker.sh) first`);
    this.port ||= await freePort();
    const config = path.join(this.dir, 'config.yml');
    fs.writeFileSync(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(this.dir, 'storage')}\nhttp:\n  addr: ${this.address}\n`);
    const log = fs.openSync(path.join(this.dir, 'registry.log'), 'a');
    this.child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    await until(async () => (await fetch(`http://${this.address}/v2/`).catch(() => undefined))?.ok, `the registry on ${this.address}`, 20_000);
  }

  /** Stops it, as an outage would; resolves once the process is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async dispose(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The Docker daemon's socket as the agent sees it (DOCKER_HOST=unix://<socket>): a relay to
 * /var/run/docker.sock that can go away as a restarting daemon does (its socket removed, every
 * connection and the event stream cut, new ones refused) and come back.
 */
export class DaemonRelay {
  readonly dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-dockerd-')));
  readonly socket = path.join(this.dir, 'docker.sock');
  private server: net.Server | undefined;
  private readonly open = new Set<net.Socket>();

  constructor(private readonly target = '/var/run/docker.sock') {}

  /** What the agent gets as DOCKER_HOST. */
  get dockerHost(): string {
    return `unix://${this.socket}`;
  }

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.open.add(s);
        s.on('close', () => this.open.delete(s));
        s.on('error', () => undefined);
      }
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socket, () => resolve());
    });
    this.server = server;
  }

  /** The daemon goes down: the socket disappears and every connection breaks. */
  async outage(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    for (const s of this.open) s.destroy();
    await closed;
  }

  async dispose(): Promise<void> {
    await this.outage();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Commits a file to the state branch with git's plumbing (a private index, no checkout), as a
 * push from elsewhere would land. `beforeMove` sees the new blob's object file before the branch
 * moves (to corrupt it). Returns the blob's and the commit's ids.
 */
export function commitToState(repo: TempRepo, name: string, text: string, message: string, beforeMove?: (objectFile: string) => void): { blob: string; commit: string } {
  const index = repo.path('.git', `reliability-index-${process.pid}`);
  const env = { ...process.env, GIT_INDEX_FILE: index };
  const git = (args: string[], input?: string) => execFileSync('git', args, { cwd: repo.dir, env, input, encoding: 'utf8' }).trim();
  try {
    git(['read-tree', 'conveyor/state']);
    const blob = git(['hash-object', '-w', '--stdin'], text);
    git(['update-index', '--add', '--cacheinfo', `100644,${blob},${name}`]);
    const tree = git(['write-tree']);
    const commit = git(['commit-tree', tree, '-p', 'conveyor/state', '-m', message]);
    beforeMove?.(repo.path('.git', 'objects', blob.slice(0, 2), blob.slice(2)));
    git(['update-ref', 'refs/heads/conveyor/state', commit]);
    return { blob, commit };
  } finally {
    fs.rmSync(index, { force: true });
  }
}
