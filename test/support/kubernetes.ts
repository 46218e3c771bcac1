import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './docker';

/**
 * A real Kubernetes control plane for one test file: etcd, kube-apiserver and
 * kube-controller-manager (built by test/setup/50-kubernetes.sh) on free loopback ports, with
 * their certificates, token file and data in a temporary folder that stop() removes.
 *
 * There is no scheduler, kubelet or container runtime: pods stay Pending until `fakeKubelet`
 * writes their status, as a kubelet would.
 */
export interface Cluster {
  /** https://127.0.0.1:PORT */
  server: string;
  /** A bearer token of the system:masters group. */
  token: string;
  /** A kubeconfig for `token`, with the API server's certificate as its certificate authority. */
  kubeconfigPath: string;
  /** The API server's self-signed certificate (PEM file). */
  caPath: string;
  /** Writes another kubeconfig for the same server with the given token (a wrong one, a user without rights, ...). */
  writeKubeconfig(token: string): string;
  /** A token the API server knows, of a user that no RBAC rule grants anything. */
  unprivilegedToken: string;
  /** A namespace name no other test of this cluster uses (not created: the runtime creates it). */
  uniqueNamespace(prefix: string): string;
  /** Calls the API server as the admin: GET, POST, PUT, PATCH (merge patch) or DELETE of a path. */
  request(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: any }>;
  fakeKubelet: FakeKubelet;
  stop(): Promise<void>;
}

/** Writes pod status as a kubelet would, for the pods that match a label selector. */
export interface FakeKubelet {
  /** Waits until at least `atLeast` (default 1) pods match and are not deleted, then marks them Running and Ready. Returns their names. */
  markReady(namespace: string, selector: string, opts?: WaitOptions): Promise<string[]>;
  /** Like markReady, but the pods' container exits with code 1: phase Failed. */
  markFailed(namespace: string, selector: string, opts?: WaitOptions): Promise<string[]>;
  /** Like markReady, but the pods' container exits with code 0: phase Succeeded (a Job's pod). */
  markSucceeded(namespace: string, selector: string, opts?: WaitOptions): Promise<string[]>;
}

export interface WaitOptions {
  atLeast?: number;
  /** How long to wait for the pods to exist. Default 30 s. */
  timeoutMs?: number;
  /** Skip pods whose status already says this (markReady on a selector that also matches ready pods). */
  onlyPending?: boolean;
}

const CACHE = process.env.CONVEYOR_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'conveyor-test');
/** Where test/setup/50-kubernetes.sh puts the binaries. */
export const KUBERNETES_BIN = path.join(CACHE, 'kubernetes', 'bin');

/** Throws, saying how to provision, when the binaries or etcd are missing. */
export function requireKubernetes(): { apiserver: string; controllerManager: string; etcd: string } {
  const apiserver = path.join(KUBERNETES_BIN, 'kube-apiserver');
  const controllerManager = path.join(KUBERNETES_BIN, 'kube-controller-manager');
  const etcd = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => fs.existsSync(p));
  const missing: string[] = [];
  if (!fs.existsSync(apiserver)) missing.push(apiserver);
  if (!fs.existsSync(controllerManager)) missing.push(controllerManager);
  if (!etcd) missing.push('etcd (Debian package etcd-server)');
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: run \`bash test/provision.sh\` (test/setup/50-kubernetes.sh builds them once, about 12 min)`);
  return { apiserver, controllerManager, etcd: etcd! };
}

/** Starts etcd, kube-apiserver and kube-controller-manager; resolves once controllers run (about 5-10 s). */
export async function startCluster(): Promise<Cluster> {
  const bins = requireKubernetes();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-k8s-'));
  const procs: { name: string; child: ChildProcess; log: string }[] = [];
  const killAll = () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  };
  process.on('exit', killAll);
  const start = (name: string, file: string, args: string[]) => {
    const log = path.join(dir, `${name}.log`);
    const out = fs.openSync(log, 'a');
    procs.push({ name, child: spawn(file, args, { stdio: ['ignore', out, out] }), log });
    fs.closeSync(out);
  };
  const stop = async () => {
    process.off('exit', killAll);
    for (const p of [...procs].reverse()) await terminate(p.child);
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const token = randomBytes(16).toString('hex');
    const unprivilegedToken = randomBytes(16).toString('hex');
    fs.writeFileSync(path.join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n${unprivilegedToken},nobody,nobody\n`, { mode: 0o600 });
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));

    const [etcdClient, etcdPeer, apiPort] = await distinctPorts(3);
    start('etcd', bins.etcd, [
      '--name=test',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=test=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitFor('etcd', procs, 20_000, () => httpOk(`http://127.0.0.1:${etcdClient}/health`));

    const certs = path.join(dir, 'certs');
    start('kube-apiserver', bins.apiserver, [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      '--insecure-port=0',
      `--cert-dir=${certs}`,
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/24',
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--v=0',
    ]);
    const server = `https://127.0.0.1:${apiPort}`;
    const caPath = path.join(certs, 'apiserver.crt');
    const call = (method: string, urlPath: string, body?: unknown) => apiRequest(server, token, method, urlPath, body);
    await waitFor('kube-apiserver', procs, 60_000, async () => fs.existsSync(caPath) && (await call('GET', '/readyz').catch(() => ({ status: 0 }))).status === 200);

    const writeKubeconfig = (t: string, file = path.join(dir, `kubeconfig-${randomBytes(3).toString('hex')}`)) => {
      fs.writeFileSync(
        file,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters:',
          '- name: test',
          '  cluster:',
          `    server: ${server}`,
          `    certificate-authority: ${caPath}`,
          'users:',
          '- name: test-user',
          '  user:',
          `    token: ${t}`,
          'contexts:',
          '- name: test',
          '  context: {cluster: test, user: test-user, namespace: default}',
          'current-context: test',
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      return file;
    };
    const kubeconfigPath = writeKubeconfig(token, path.join(dir, 'kubeconfig'));
    start('kube-controller-manager', bins.controllerManager, [
      `--kubeconfig=${kubeconfigPath}`,
      '--leader-elect=false',
      '--port=0',
      '--secure-port=0',
      `--service-account-private-key-file=${path.join(dir, 'sa.key')}`,
      `--root-ca-file=${caPath}`,
      '--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service,-csrsigning,-csrapproving,-csrcleaner,-bootstrapsigner,-tokencleaner',
      '--v=0',
    ]);
    // The service account controller makes "default" in each namespace: the controllers run.
    await waitFor('kube-controller-manager', procs, 60_000, async () => (await call('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200);

    let counter = 0;
    return {
      server,
      token,
      kubeconfigPath,
      caPath,
      unprivilegedToken,
      writeKubeconfig: (t) => writeKubeconfig(t),
      uniqueNamespace: (prefix) => `${prefix}-${++counter}-${randomBytes(2).toString('hex')}`,
      request: call,
      fakeKubelet: fakeKubelet(call),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// -- the fake kubelet ----------------------------------------------------------------------------

type Call = (method: string, urlPath: string, body?: unknown) => Promise<{ status: number; body: any }>;

function fakeKubelet(call: Call): FakeKubelet {
  const mark = (status: (pod: any, now: string) => object) => async (namespace: string, selector: string, opts: WaitOptions = {}) => {
    const atLeast = opts.atLeast ?? 1;
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    const listPath = `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`;
    for (;;) {
      const r = await call('GET', listPath);
      if (r.status !== 200) throw new Error(`fake kubelet: listing pods ${selector} in ${namespace} answered ${r.status}: ${JSON.stringify(r.body)}`);
      let pods = (r.body.items as any[]).filter((p) => !p.metadata.deletionTimestamp);
      if (opts.onlyPending) pods = pods.filter((p) => !p.status?.phase || p.status.phase === 'Pending');
      if (pods.length >= atLeast) {
        const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        for (let pod of pods) {
          const at = `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}`;
          let put = await call('PUT', `${at}/status`, { ...pod, status: status(pod, now) });
          // Changed meanwhile (409): write over the newer version.
          for (let tries = 0; put.status === 409 && tries < 5; tries++) {
            pod = (await call('GET', at)).body;
            put = await call('PUT', `${at}/status`, { ...pod, status: status(pod, now) });
          }
          if (put.status !== 200) throw new Error(`fake kubelet: writing the status of pod ${pod.metadata.name} answered ${put.status}: ${JSON.stringify(put.body)}`);
        }
        return pods.map((p) => p.metadata.name as string);
      }
      if (Date.now() > deadline) throw new Error(`fake kubelet: ${pods.length} of ${atLeast} pods matching ${selector} in ${namespace} appeared`);
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  const conditions = (now: string, ready: boolean) => [
    { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
    { type: 'Initialized', status: 'True', lastTransitionTime: now },
    { type: 'ContainersReady', status: ready ? 'True' : 'False', lastTransitionTime: now },
    { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: now },
  ];
  const containers = (pod: any, state: (c: any) => object, ready: boolean) =>
    (pod.spec.containers as any[]).map((c) => ({ name: c.name, image: c.image, imageID: '', ready, restartCount: 0, started: ready, state: state(c) }));
  const terminated = (pod: any, now: string, phase: 'Failed' | 'Succeeded') => {
    const exitCode = phase === 'Failed' ? 1 : 0;
    return {
      phase,
      hostIP: '127.0.0.1',
      podIP: '10.244.0.1',
      startTime: now,
      conditions: conditions(now, false),
      containerStatuses: containers(pod, () => ({ terminated: { exitCode, reason: phase === 'Failed' ? 'Error' : 'Completed', startedAt: now, finishedAt: now } }), false),
    };
  };
  return {
    markReady: mark((pod, now) => ({
      phase: 'Running',
      hostIP: '127.0.0.1',
      podIP: '10.244.0.1',
      startTime: now,
      conditions: conditions(now, true),
      containerStatuses: containers(pod, () => ({ running: { startedAt: now } }), true),
    })),
    markFailed: mark((pod, now) => terminated(pod, now, 'Failed')),
    markSucceeded: mark((pod, now) => terminated(pod, now, 'Succeeded')),
  };
}

// -- plumbing ------------------------------------------------------------------------------------

function apiRequest(server: string, token: string, method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      `${server}${urlPath}`,
      {
        method,
        // The server's certificate is self-signed and made at start; tests reach it on loopback only.
        rejectUnauthorized: false,
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(payload ? { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // readyz answers plain text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function httpOk(url: string): Promise<boolean> {
  return fetch(url, { signal: AbortSignal.timeout(2000) }).then(
    (r) => r.ok,
    () => false,
  );
}

/** Polls until `ready` says so; fails early, with the log's last lines, when a process exits. */
async function waitFor(name: string, procs: { name: string; child: ChildProcess; log: string }[], timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
    if (dead) throw new Error(`${dead.name} exited (${dead.child.exitCode ?? dead.child.signalCode}):\n${tail(dead.log)}`);
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${name} was not ready within ${timeoutMs / 1000} s:\n${tail(procs.find((p) => p.name === name)?.log)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

function tail(file: string | undefined, lines = 20): string {
  if (!file) return '';
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** SIGTERM, then SIGKILL after 5 s. */
function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * A kubelet's loop for the test cluster: marks each pending pod of the namespace's environments
 * Running and Ready once it exists, as a node would after starting its container, until stopped.
 * `waitMs` is how long each look waits for a pending pod.
 */
export class ReadyLoop {
  private running = true;
  private readonly loop: Promise<void>;
  private failure: Error | undefined;

  constructor(cluster: Cluster, namespace: string, waitMs = 300) {
    this.loop = (async () => {
      while (this.running) {
        try {
          await cluster.fakeKubelet.markReady(namespace, 'conveyor.environment', { onlyPending: true, timeoutMs: waitMs });
        } catch (e) {
          // No pending pod within the wait: look again. Anything else is a fault of the cluster.
          if (!/pods matching .* appeared/.test((e as Error).message)) {
            this.failure = e as Error;
            return;
          }
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    if (this.failure) throw this.failure;
  }
}
