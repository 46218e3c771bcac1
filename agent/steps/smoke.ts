import type { TestResult } from '../protocol';
import type { AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { SingleStep } from './executor';
import { environmentUrl, formatDuration, runProbe } from './probe';

/**
 * The `smoke` stage kind: sends each probe of the stage to its environment once, in the order
 * written, and checks the answers. Each probe is a test result (with its line in conveyor.yml);
 * the stage fails when one does. After a deploy stage it needs, the stage verifies that deploy by
 * default (the analyzer sets `verifies`), so a failure rolls the environment back.
 */
export class SmokeExecutor implements StageExecutor {
  readonly kind = 'smoke' as const;

  async execute(ctx: AttemptContext): Promise<AttemptOutcome> {
    const probes = ctx.stage.probes ?? [];
    const environment = ctx.stage.environment ?? '';
    const step = new SingleStep(ctx, `probe ${environment}: ${probes.map((p) => p.name).join(', ')}`);
    const base = await environmentUrl(ctx);
    if (!base.ok) return step.end({ status: 'failed', message: base.error });
    step.line(`probing ${environment} at ${base.value}`);
    const results: TestResult[] = [];
    for (const probe of probes) {
      if (ctx.signal.aborted) break;
      const o = await runProbe(base.value, probe, ctx.signal);
      if (ctx.signal.aborted) break;
      step.line(o.ok ? `✓ ${probe.name}: ${o.status} in ${formatDuration(o.durationMs)}` : `✗ ${probe.name}: ${o.message}`);
      results.push({
        suite: ctx.stage.name,
        name: ctx.masker.mask(probe.name),
        status: o.ok ? 'passed' : 'failed',
        durationMs: o.durationMs,
        message: o.message === null ? null : ctx.masker.mask(o.message),
        expected: o.expected === null ? null : ctx.masker.mask(o.expected),
        actual: o.actual === null ? null : ctx.masker.mask(o.actual),
        stack: null,
        location: probe.location,
      });
    }
    if (ctx.signal.aborted) {
      return step.end(ctx.signal.reason === 'timeout' ? { status: 'timed_out', message: `timed out after ${results.length} of ${probes.length} probes` } : { status: 'cancelled', message: 'cancelled' });
    }
    const failed = results.filter((r) => r.status === 'failed');
    ctx.emit({ type: 'tests.reported', runId: ctx.runId, stage: ctx.stage.name, attempt: ctx.attempt, passed: results.length - failed.length, failed: failed.length, skipped: 0, results });
    if (failed.length === 0) return step.end({ status: 'succeeded', message: null });
    return step.end({ status: 'failed', message: `${failed.length} of ${results.length} probes failed: ${failed[0].name}: ${failed[0].message}` });
  }
}
