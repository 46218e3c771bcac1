import { randomBytes } from 'node:crypto';
import type { V1Job, V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { apiStatusCode, connectKubernetes, describeKubernetesError, dnsLabel, ensureNamespace, LABEL, type KubeClient, type KubernetesTarget } from '../runtimes/kubernetes';
import { sleep } from '../util/timers';

/** One command to run as a Kubernetes Job. */
export interface JobOptions extends KubernetesTarget {
  /** The image, by digest or tag. */
  image: string;
  /** Replaces the image's entrypoint; empty: the image's own. */
  command: string[];
  env?: Record<string, string>;
  /** The Job's name before a random suffix: "migrate" → migrate-3f9a1c. */
  name: string;
  /** Aborted: the Job is deleted and the result is cancelled. */
  signal?: AbortSignal;
  /** Each piece of the log as it comes: the pod's output and Conveyor's own lines. */
  onLog?: (text: string) => void;
  /** Default 10 minutes. */
  timeoutMs?: number;
  /** Extra labels on the Job and its pod. */
  labels?: Record<string, string>;
}

export interface JobResult {
  status: 'succeeded' | 'failed' | 'cancelled' | 'timed_out';
  /** One line for people: "job migrate-3f9a1c failed: exit code 1 (Error)". */
  message: string;
  /** Everything onLog was given. */
  log: string;
}

/** The label that names the Jobs Conveyor runs (its value: the name before the suffix). */
export const JOB_LABEL = 'conveyor.job';
const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const POLL_MS = 250;

/**
 * Runs one command as a batch/v1 Job (no retries: backoffLimit 0) and waits for it: streams the
 * pod's log while it runs, and deletes the Job (with its pods) at the end, on cancel and on
 * time-out. Never throws: a failure of the cluster or the kubeconfig is a failed result.
 */
export async function runJob(opts: JobOptions): Promise<JobResult> {
  let log = '';
  const say = (text: string) => {
    log += text;
    try {
      opts.onLog?.(text);
    } catch {
      // a listener's fault is not the job's
    }
  };
  const line = (text: string) => say(`${text}\n`);
  const signal = opts.signal ?? new AbortController().signal;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const base = jobBaseName(opts.name);
  const name = `${base}-${randomBytes(3).toString('hex')}`;
  const end = (status: JobResult['status'], message: string): JobResult => {
    line(message);
    return { status, message, log };
  };

  let c: KubeClient;
  try {
    c = await connectKubernetes(opts);
  } catch (e) {
    return end('failed', describeKubernetesError(e, undefined));
  }
  const ns = c.namespace;
  const labels = { ...opts.labels, [LABEL.managed]: 'true', [JOB_LABEL]: base };
  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: ns, labels },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: Math.ceil(timeoutMs / 1000),
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'job',
              image: opts.image,
              ...(opts.command.length ? { command: opts.command } : {}),
              env: Object.entries(opts.env ?? {}).map(([k, v]) => ({ name: k, value: v })),
            },
          ],
        },
      },
    },
  };
  if (signal.aborted) return end('cancelled', `job ${name} was cancelled before it started`);
  try {
    await ensureNamespace(c, ns);
    await c.batch.createNamespacedJob({ namespace: ns, body: job });
  } catch (e) {
    return end('failed', describeKubernetesError(e, c.origin, `creating Job ${name} in namespace ${ns}`));
  }
  line(`job ${name} created in namespace ${ns} (image ${opts.image})`);

  const logs = new PodLogs(c, ns, say);
  let outcome: { status: JobResult['status']; message: string };
  try {
    outcome = await waitJob(c, name, timeoutMs, signal, logs);
  } catch (e) {
    outcome = { status: 'failed', message: describeKubernetesError(e, c.origin, `job ${name}`) };
  }
  logs.stop();
  try {
    await c.batch.deleteNamespacedJob({ name, namespace: ns, propagationPolicy: 'Background' });
  } catch (e) {
    if (apiStatusCode(e) !== 404) line(`could not delete job ${name}: ${describeKubernetesError(e, c.origin)}`);
  }
  return end(outcome.status, outcome.message);
}

/** Polls the Job until a Complete or Failed condition, the time-out or the signal. */
async function waitJob(c: KubeClient, name: string, timeoutMs: number, signal: AbortSignal, logs: PodLogs): Promise<{ status: JobResult['status']; message: string }> {
  const ns = c.namespace;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal.aborted) return { status: 'cancelled', message: `job ${name} was cancelled and is deleted` };
    if (Date.now() > deadline) return { status: 'timed_out', message: `job ${name} did not finish within ${Math.round(timeoutMs / 1000)}s and is deleted` };
    const current = await c.batch.readNamespacedJob({ name, namespace: ns });
    const pods = (await c.core.listNamespacedPod({ namespace: ns, labelSelector: `job-name=${name}` })).items;
    for (const p of pods) logs.follow(p);
    const done = current.status?.conditions?.find((x) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True');
    if (done) {
      await logs.settle();
      if (done.type === 'Complete') return { status: 'succeeded', message: `job ${name} succeeded` };
      // activeDeadlineSeconds is the time-out too: the job controller may see it first.
      if (done.reason === 'DeadlineExceeded') return { status: 'timed_out', message: `job ${name} did not finish within ${Math.round(timeoutMs / 1000)}s and is deleted` };
      const exit = exitOf(pods);
      const why = [done.reason, done.message].filter(Boolean).join(': ');
      return { status: 'failed', message: `job ${name} failed${exit ? `: ${exit}` : ''}${why ? ` (${why})` : ''}` };
    }
    await sleep(POLL_MS, signal);
  }
}

/** A DNS label for the Job's name, leaving room for the suffix. */
function jobBaseName(name: string): string {
  return dnsLabel(name, 50) || 'job';
}

function exitOf(pods: V1Pod[]): string {
  for (const p of pods) {
    const t = p.status?.containerStatuses?.find((s) => s.state?.terminated)?.state?.terminated;
    if (t) return `exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}${t.message ? `: ${t.message}` : ''}`;
  }
  return '';
}

/**
 * Streams the log of each pod once it has started. The API server fetches logs from the node's
 * kubelet; when it gives none (204: no kubelet serves the pod) or refuses, a line says so instead.
 */
class PodLogs {
  private readonly started = new Set<string>();
  private readonly streams: Promise<void>[] = [];
  private readonly stopAll = new AbortController();

  constructor(
    private readonly c: KubeClient,
    private readonly namespace: string,
    private readonly say: (text: string) => void,
  ) {}

  follow(p: V1Pod): void {
    const name = p.metadata?.name ?? '';
    const phase = p.status?.phase;
    if (!name || this.started.has(name) || (phase !== 'Running' && phase !== 'Succeeded' && phase !== 'Failed')) return;
    this.started.add(name);
    const url = `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods/${encodeURIComponent(name)}/log?container=job&follow=true`;
    this.streams.push(
      this.c.objects.follow(url, this.say, this.stopAll.signal).then(
        (status) => {
          if (status === 204) this.say(`(no log from pod ${name}: the API server answered 204 No Content, as it does when no kubelet serves the pod)\n`);
        },
        (e) => {
          if (!this.stopAll.signal.aborted) this.say(`(no log from pod ${name}: ${describeKubernetesError(e, this.c.origin)})\n`);
        },
      ),
    );
  }

  /** Waits (at most 2 s) for the streams of finished pods to deliver their last lines. */
  async settle(): Promise<void> {
    await Promise.race([Promise.all(this.streams), sleep(2000, this.stopAll.signal)]);
  }

  stop(): void {
    this.stopAll.abort();
  }
}
