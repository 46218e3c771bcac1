import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent } from '../agent/agent';
import { median, type BenchResult } from './util';

const STEPS = 50;
const ROUNDS = 5;

/**
 * Per-step orchestration overhead: a 50-step pipeline of trivial commands run by the agent,
 * against the same commands in a plain shell script, measured in the same process.
 */
export async function benchOrchestration(): Promise<BenchResult> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bench-')));
  const commands = Array.from({ length: STEPS }, (_, i) => `echo step ${i + 1}`);
  const git = (...args: string[]) => spawnSync('git', args, { cwd: dir, stdio: 'ignore' });
  // A chain of 50 stages, one step each: the worst case, no parallelism to hide the cost.
  const stages = commands.map((c, i) => `    - name: s${i + 1}\n      run: ${c}\n${i ? `      needs: [s${i}]\n` : ''}`).join('');
  fs.writeFileSync(path.join(dir, 'conveyor.yml'), `pipeline:\n  stages:\n${stages}`);
  fs.writeFileSync(path.join(dir, 'script.sh'), commands.join('\n') + '\n');
  git('init', '-q', '-b', 'main');
  git('-c', 'user.email=b@example.com', '-c', 'user.name=bench', 'commit', '-q', '--allow-empty', '-m', 'bench');
  git('add', '-A');
  git('-c', 'user.email=b@example.com', '-c', 'user.name=bench', 'commit', '-q', '-m', 'pipeline');

  const shellTimes: number[] = [];
  const treeTimes: number[] = [];
  const snapshotTimes: number[] = [];
  const agent = await Agent.start({ workspace: dir, commitTrigger: false });
  try {
    const runOnce = async (workingTree: boolean) => {
      const t0 = process.hrtime.bigint();
      const r = await agent.engine.start({ trigger: 'manual', workingTree });
      if (!r.ok) throw new Error(r.error.error);
      await agent.engine.whenFinished(r.value.id);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const status = agent.store.getRun(r.value.id)!.status;
      if (status !== 'succeeded') throw new Error(`bench run ${status}`);
      return ms;
    };
    await runOnce(true); // warm-up
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync('/bin/sh', [path.join(dir, 'script.sh')], { cwd: dir, encoding: 'utf8' });
      shellTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (r.status !== 0 || !r.stdout.includes(`step ${STEPS}`)) throw new Error('the shell baseline failed');
      treeTimes.push(await runOnce(true));
      snapshotTimes.push(await runOnce(false));
    }
  } finally {
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const shell = median(shellTimes);
  const tree = median(treeTimes);
  const snap = median(snapshotTimes);
  const perStep = (tree - shell) / STEPS;
  return {
    name: 'orchestration',
    lines: [
      `50-step pipeline of trivial commands (chain of 50 stages), median of ${ROUNDS}:`,
      `  plain shell script:            ${shell.toFixed(1)} ms`,
      `  conveyor, working tree:        ${tree.toFixed(1)} ms   (${(tree / shell).toFixed(1)}x the shell)`,
      `  conveyor, commit snapshot:     ${snap.toFixed(1)} ms   (snapshot create+remove ${(snap - tree).toFixed(1)} ms)`,
      `  overhead per step:             ${perStep.toFixed(2)} ms   (target < 15 ms) ${perStep < 15 ? 'PASS' : 'MISS'}`,
    ],
    figures: { shellMs: shell, workingTreeMs: tree, snapshotMs: snap, overheadPerStepMs: perStep },
  };
}
