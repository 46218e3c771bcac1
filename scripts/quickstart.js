// `npm start`: runs the example service's pipeline with the embedded process runtime (no Docker),
// through the same `conveyor` CLI a user runs, then says where to look and stops the agent.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'cli.js');
const example = path.join(root, 'examples', 'hello-service');
const conveyor = (...args) => spawnSync(process.execPath, [cli, ...args, '--workspace', example], { stdio: 'inherit', cwd: root });

console.log(`Conveyor: running the example pipeline of ${path.relative(process.cwd(), example) || example}`);
console.log('(a clean snapshot of the current commit; stages in parallel where the DAG allows)\n');
const run = conveyor('run');
console.log('');
conveyor('history', '--limit', '5');
console.log(`
Where to look:
  the run, stage by stage:   npx conveyor status --workspace examples/hello-service
  the logs:                  npx conveyor logs <RUN> --workspace examples/hello-service
  every run so far:          npx conveyor history --workspace examples/hello-service
  the history database:      examples/hello-service/.conveyor/history.db
  the artifact, by sha256:   examples/hello-service/.conveyor/artifacts/sha256/
(Each command starts the agent again on demand; this one stops it now.)`);
conveyor('stop');
process.exit(run.status ?? 1);
