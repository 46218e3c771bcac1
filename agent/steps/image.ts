import * as path from 'node:path';
import { ensureLocalRegistry } from '../runtimes/registry';
import type { AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { SingleStep } from './executor';
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
    const step = new SingleStep(ctx, command);
    const write = (text: string) => step.write(text);
    const end = (outcome: AttemptOutcome) => step.end(outcome);
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
