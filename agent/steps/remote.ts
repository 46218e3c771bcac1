import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutorConfig } from '../protocol';
import { runContainerJob, JOB_OUTPUT_DIR } from './container-job';
import { buildImage } from './image-build';
import { runJob } from './kubernetes-job';
import type { AbortReason, AttemptContext } from './executor';

/** Host variables that describe this machine, not the step: they are not passed into containers. */
const HOST_ONLY = /^(PATH|HOME|HOSTNAME|PWD|OLDPWD|SHELL|USER|LOGNAME|TERM|TMPDIR|SHLVL|_|LANG|LC_[A-Z]+|NODE_OPTIONS|NODE_PATH|NODE_EXTRA_CA_CERTS|XDG_[A-Z_]+|DISPLAY|SSH_[A-Z_]+|DBUS_[A-Z_]+|KUBECONFIG|DOCKER_HOST)$/;
export const WORKSPACE_MOUNT = '/workspace';

export interface RemoteStepResult {
  status: 'succeeded' | 'failed' | 'cancelled' | 'timed_out';
  exitCode: number | null;
  error?: string;
}

/** `$MATRIX_NODE` or `${MATRIX_NODE}` in an image name, from the step's environment. */
export function expandImage(image: string, env: Record<string, string>): string {
  return image.replace(/\$\{?([A-Z_][A-Z0-9_]*)\}?/g, (m, name: string) => env[name] ?? m);
}

/**
 * One step on another executor: a container (docker), a one-shot swarm job, or a Kubernetes Job.
 * The stage's folder is mounted read-only at /workspace and an outputs folder at $CONVEYOR_OUT;
 * what the step writes there is copied back into the stage's folder, so reports and artifacts are
 * read as for a local step. Cancel and time-out remove the remote work.
 */
export async function runRemoteStep(ctx: AttemptContext, index: number, executor: ExecutorConfig, write: (text: string) => void): Promise<RemoteStepResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.env)) if (v !== undefined && !HOST_ONLY.test(k)) env[k] = v;
  env.CONVEYOR_OUT = JOB_OUTPUT_DIR;
  const command = ctx.stage.run[index];
  const name = `conveyor-${ctx.runId}-${ctx.stage.name}-${index}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 50).replace(/-+$/, '');
  const timeoutOf = () => (ctx.signal.aborted ? (ctx.signal.reason as AbortReason) : undefined);
  let image = executor.image ? expandImage(executor.image, env) : null;
  if (!image) {
    if (executor.kind !== 'docker') return { status: 'failed', exitCode: null, error: `executor ${executor.kind} needs an image: add "image:" under executor` };
    if (!fs.existsSync(path.join(ctx.cwd, 'Dockerfile'))) return { status: 'failed', exitCode: null, error: 'executor docker has no image and the stage folder has no Dockerfile: add "image:" under executor, or a Dockerfile' };
    write(`[conveyor] building the step image from the run's Dockerfile\n`);
    const built = await buildImage({ contextDir: ctx.cwd, repository: `conveyor-exec/${name.replace(/-\d+$/, '')}`, tag: `run-${ctx.runId}`, signal: ctx.signal, onLog: (l) => write(`${l}\n`) });
    if (!built.ok) return { status: ctx.signal.aborted ? (timeoutOf() === 'timeout' ? 'timed_out' : 'cancelled') : 'failed', exitCode: null, error: built.error.reason };
    image = built.value.imageId;
  }
  write(`[conveyor] running on ${executor.kind} in ${image}\n`);
  if (executor.kind === 'kubernetes') {
    const r = await runJob({
      kubeconfig: executor.kubeconfig ?? undefined,
      context: executor.context ?? undefined,
      namespace: executor.namespace ?? undefined,
      image,
      command: ['/bin/sh', '-c', command],
      env,
      name,
      signal: ctx.signal,
      onLog: (t) => write(t),
      timeoutMs: ctx.stage.timeoutMs || undefined,
      labels: { 'conveyor.run': String(ctx.runId), 'conveyor.stage': ctx.stage.name.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').slice(0, 63) },
    });
    const status = r.status === 'cancelled' && timeoutOf() === 'timeout' ? 'timed_out' : r.status;
    if (r.message && status !== 'succeeded') write(`[conveyor] ${r.message}\n`);
    return { status, exitCode: null, error: status === 'failed' ? r.message ?? 'the Job failed' : undefined };
  }
  const out = path.join(ctx.logDir, `out-${ctx.attempt}-${index}`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const r = await runContainerJob({
    mode: executor.kind === 'swarm' ? 'swarm' : 'docker',
    image,
    command,
    env,
    workdir: WORKSPACE_MOUNT,
    mounts: [
      { source: ctx.cwd, target: WORKSPACE_MOUNT, readOnly: true },
      { source: out, target: JOB_OUTPUT_DIR },
    ],
    name,
    labels: { 'conveyor.run': String(ctx.runId), 'conveyor.stage': ctx.stage.name },
    signal: ctx.signal,
    onLog: (t) => write(t),
  });
  // Outputs come back into the stage's folder: reports/ and artifacts as the config names them.
  try {
    fs.cpSync(out, ctx.cwd, { recursive: true, force: true });
  } catch (e) {
    write(`[conveyor] could not collect the outputs: ${(e as Error).message}\n`);
  }
  const status = r.status === 'cancelled' && timeoutOf() === 'timeout' ? 'timed_out' : r.status;
  if (r.message && status !== 'succeeded' && r.exitCode === null) write(`[conveyor] ${r.message}\n`);
  return { status, exitCode: r.exitCode, error: r.exitCode === null && status === 'failed' ? r.message ?? undefined : undefined };
}
