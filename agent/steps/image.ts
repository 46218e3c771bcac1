import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StepInfo, StepStatus } from '../protocol';
import { ensureLocalRegistry } from '../runtimes/registry';
import type { AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { stepLogName } from './executor';
import { buildImage, imageLabels } from './image-build';

/**
 * The `image` stage kind: builds a container image from the stage's tree (the run's snapshot),
 * labelled with the commit, run and pipeline, tagged with the commit SHA, pushes it and records
 * it as the stage's artifact by manifest digest. Deploys then pull exactly that digest.
 */
export class ImageExecutor implements StageExecutor {
  readonly kind = 'image' as const;

  constructor(private readonly opts: { stateDir: string; pipeline: () => string }) {}

  async execute(ctx: AttemptContext): Promise<AttemptOutcome> {
    const image = ctx.stage.image!;
    const tag = ctx.commit ? ctx.commit.slice(0, 12) : `run-${ctx.runId}`;
    const command = `build and push ${image.registry}/${image.name}:${tag}`;
    const startedAt = new Date().toISOString();
    const step = (status: StepStatus, finishedAt: string | null): StepInfo => ({
      runId: ctx.runId,
      stage: ctx.stage.name,
      attempt: ctx.attempt,
      index: 0,
      command,
      status,
      exitCode: null,
      startedAt,
      finishedAt,
    });
    fs.mkdirSync(ctx.logDir, { recursive: true });
    const file = fs.openSync(path.join(ctx.logDir, stepLogName(ctx.attempt, 0)), 'a', 0o600);
    const write = (text: string) => {
      if (!text) return;
      fs.writeSync(file, text);
      ctx.emit({ type: 'log', runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt, step: 0, text });
    };
    const end = (outcome: AttemptOutcome): AttemptOutcome => {
      write(ctx.masker.end());
      if (outcome.message && outcome.status !== 'succeeded') write(`${outcome.message}\n`);
      ctx.emit({ type: 'step.changed', step: step(outcome.status, new Date().toISOString()) });
      fs.closeSync(file);
      return outcome;
    };
    ctx.emit({ type: 'step.changed', step: step('running', null) });
    const registry = await ensureLocalRegistry({ address: image.registry, stateDir: this.opts.stateDir });
    if (!registry.ok) return end({ status: 'failed', message: registry.error });
    if (registry.value.started) write(`started a registry on ${registry.value.address}\n`);
    const repository = `${registry.value.address}/${image.name}`;
    const built = await buildImage({
      contextDir: path.resolve(ctx.cwd, image.context),
      dockerfile: image.dockerfile,
      repository,
      tag,
      labels: imageLabels({ commit: ctx.commit ?? undefined, runId: ctx.runId, pipeline: this.opts.pipeline() }),
      onLog: (line) => write(ctx.masker.push(`${line}\n`)),
      signal: ctx.signal,
    });
    if (!built.ok) {
      if (built.error.reason === 'cancelled') {
        return end(ctx.signal.reason === 'timeout' ? { status: 'timed_out', message: 'timed out while building the image' } : { status: 'cancelled', message: 'cancelled' });
      }
      return end({ status: 'failed', message: built.error.reason.split('\n')[0] });
    }
    write(`pushed ${repository}:${tag} as ${built.value.digest}\n`);
    ctx.emit({
      type: 'artifact.recorded',
      artifact: { runId: ctx.runId, stage: ctx.stage.name, kind: 'image', path: `${repository}:${tag}`, digest: built.value.digest, size: 0 },
    });
    return end({ status: 'succeeded', message: null });
  }
}
