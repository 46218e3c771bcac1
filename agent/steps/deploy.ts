import * as path from 'node:path';
import type { ArtifactInfo, ArtifactRef } from '../protocol';
import { actor } from '../deploy/deployer';
import type { AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { SingleStep } from './executor';

/**
 * The `deploy` stage kind: deploys an artifact this run recorded to the stage's environment,
 * through the deploy phase (a new release; an approval first when the environment's promotion is
 * manual; the runtime's strategy; automatic rollback when the release never gets healthy). The
 * same artifact, by digest, is what every environment gets: a deploy never rebuilds.
 */
export class DeployExecutor implements StageExecutor {
  readonly kind = 'deploy' as const;

  async execute(ctx: AttemptContext): Promise<AttemptOutcome> {
    const environment = ctx.stage.environment!;
    const picked = pickArtifact(ctx.stage.artifact, ctx.artifacts());
    const command = `deploy ${picked.ok ? picked.artifact.path : 'artifact'} to ${environment}`;
    const step = new SingleStep(ctx, command);
    const log = (text: string) => step.line(text);
    const end = (outcome: AttemptOutcome) => step.end(outcome);
    if (!picked.ok) return end({ status: 'failed', message: picked.reason });
    if (!ctx.deployer) return end({ status: 'failed', message: 'this agent has no deploy phase' });
    const a = picked.artifact;
    log(`deploying ${a.stage}/${a.path} (${a.digest}) to ${environment}`);
    const result = ctx.deployer.deploy({
      environment,
      artifact: artifactRef(a),
      runId: ctx.runId,
      stage: ctx.stage.name,
      commit: ctx.commit,
      requestedBy: actor('pipeline'),
      signal: ctx.signal,
      onWaiting: (approval) => {
        if (approval) log(`waiting for approval #${approval.id}: conveyor approve ${approval.id} (or reject ${approval.id})`);
        ctx.setWaiting(approval ? `waiting for approval #${approval.id} to deploy ${environment}@${approval.release}` : null);
      },
      onProgress: log,
    });
    if (!result.ok) return end({ status: 'failed', message: `${result.error.error}${result.error.fix ? ` (${result.error.fix})` : ''}` });
    const d = await result.value.done;
    switch (d.status) {
      case 'succeeded':
        return end({ status: 'succeeded', message: null });
      case 'cancelled':
        return end({ status: ctx.signal.reason === 'timeout' ? 'timed_out' : 'cancelled', message: d.reason });
      case 'rolled_back':
        return end({ status: 'failed', message: `deploy #${d.id} to ${environment} was rolled back: ${firstLine(d.reason)}` });
      case 'rejected':
        return end({ status: 'failed', message: `deploy to ${environment} ${firstLine(d.reason)}` });
      default:
        return end({ status: 'failed', message: `deploy #${d.id} to ${environment} failed: ${firstLine(d.reason)}` });
    }
  }
}

/** An artifact as a release names it: an image by repository and digest, a file by digest. */
export function artifactRef(a: ArtifactInfo): ArtifactRef {
  return a.kind === 'image'
    ? { kind: 'image', repository: a.path.replace(/:[^:/]+$/, ''), digest: a.digest }
    : { kind: 'files', digest: a.digest, name: path.basename(a.path) };
}

function firstLine(s: string | null): string {
  return (s ?? '').split('\n')[0];
}

/** The artifact to deploy: the named stage's, else the run's only one. */
export function pickArtifact(stage: string | undefined, all: ArtifactInfo[]): { ok: true; artifact: ArtifactInfo } | { ok: false; reason: string } {
  const candidates = stage ? all.filter((a) => a.stage === stage) : all;
  if (candidates.length === 1) return { ok: true, artifact: candidates[0] };
  if (candidates.length === 0) {
    return {
      ok: false,
      reason: stage ? `stage "${stage}" recorded no artifact in this run; give it "artifacts: [...]"` : 'no stage of this run recorded an artifact; add "artifacts: [...]" to the stage that builds it',
    };
  }
  return {
    ok: false,
    reason: `${candidates.length} artifacts to choose from (${candidates.map((a) => `${a.stage}/${a.path}`).join(', ')}); ${stage ? 'make the stage record one' : 'name the stage with "artifact:"'}`,
  };
}
