import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchEvents } from './events';
import { benchOrchestration } from './orchestration';
import { benchStore } from './store';
import { benchDeployDocker } from './deploy-docker';
import { benchBlueGreen } from './bluegreen';
import { benchDevelop } from './develop';
import { benchWatch } from './watch';
import { benchGitops } from './gitops';
import { benchLoad } from './load';
import { benchHistory } from './history';
import { benchCluster } from './cluster';
import type { BenchResult } from './util';

/**
 * `npm run bench`: every benchmark, each against a peer or the raw command in the same run.
 * `npm run bench -- NAME...` runs only those. Figures also go to test-output/bench.json.
 */
const ALL: Record<string, () => Promise<BenchResult>> = {
  orchestration: benchOrchestration,
  events: benchEvents,
  store: benchStore,
  'deploy-docker': benchDeployDocker,
  bluegreen: benchBlueGreen,
  develop: benchDevelop,
  watch: benchWatch,
  gitops: benchGitops,
  load: benchLoad,
  history: benchHistory,
  cluster: benchCluster,
};

async function main(): Promise<void> {
  const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(ALL);
  console.log(`conveyor benchmarks · node ${process.version} · ${os.cpus().length} cores · ${new Date().toISOString()}`);
  const results: BenchResult[] = [];
  for (const name of names) {
    const fn = ALL[name];
    if (!fn) throw new Error(`no benchmark "${name}"; there are: ${Object.keys(ALL).join(', ')}`);
    console.log(`\n## ${name}`);
    const r = await fn();
    for (const line of r.lines) console.log(line);
    results.push(r);
  }
  const out = path.join(__dirname, '..', '..', 'test-output');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'bench.json'), JSON.stringify(results, null, 2));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
