import { CommandExecutor } from './command';
import type { AttemptContext, AttemptOutcome, StageExecutor } from './executor';
import { SingleStep } from './executor';
import { environmentUrl } from './probe';

/**
 * The `acceptance` stage kind: the stage's commands (each a step, with the stage's report), run
 * against its environment, whose URL they get as $CONVEYOR_ENV_URL and $BASE_URL (unless the
 * stage sets BASE_URL itself). Deploys to production are expected to need it; the analyzer warns
 * about one that does not.
 */
export class AcceptanceExecutor implements StageExecutor {
  readonly kind = 'acceptance' as const;

  constructor(private readonly commands = new CommandExecutor()) {}

  async execute(ctx: AttemptContext): Promise<AttemptOutcome> {
    const url = await environmentUrl(ctx);
    if (!url.ok) return new SingleStep(ctx, `find the URL of ${ctx.stage.environment ?? 'the environment'}`).end({ status: 'failed', message: url.error });
    const env: Record<string, string> = { ...ctx.env, CONVEYOR_ENV_URL: url.value };
    if (!Object.prototype.hasOwnProperty.call(ctx.stage.env, 'BASE_URL')) env.BASE_URL = url.value;
    return this.commands.execute({ ...ctx, env });
  }
}
