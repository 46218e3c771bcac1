import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Agent } from '../../../agent/agent';
import type { StageInfo } from '../../../agent/protocol';
import { eventsOf, finished, pipelineYaml, scratch, startAgent, startRun, TempRepo, until } from '../../support/fixtures';

/**
 * Matrix stages through the engine: one stage per cell, MATRIX_<AXIS> variables, optional cells,
 * and dependents that wait for every cell. Cells prove what ran with marker files in $OUT.
 */
describe('engine: matrix stages', function () {
  this.timeout(60_000);
  let repo: TempRepo;
  let agent: Agent;
  let out: string;

  const setup = async (stages: string) => {
    out = scratch();
    repo = new TempRepo({ 'conveyor.yml': pipelineYaml(stages) });
    agent = await startAgent(repo, { env: { ...process.env, OUT: out } });
  };

  afterEach(async () => {
    await agent?.stop();
    repo?.dispose();
    fs.rmSync(out, { recursive: true, force: true });
  });

  // Each cell writes a TAP report of its own, then the node=CRASH cells kill their shell.
  const MATRIX = (crash: string, optional: string) => `
- name: compat
  kind: matrix
  run: |
    mkdir -p reports
    printf 'TAP version 13\\n1..1\\nok 1 - works on %s\\n' "$MATRIX_NODE/$MATRIX_DB" > "reports/$MATRIX_NODE-$MATRIX_DB.tap"
    echo "$MATRIX_NODE/$MATRIX_DB" >> "$OUT/cells"
    [ "$MATRIX_NODE" != ${crash} ] || kill -SEGV $$
  report: { format: tap, path: "reports/$MATRIX_NODE-\${MATRIX_DB}.tap" }
  matrix:
    axes: { node: [18, 20, 22], db: [pg, sqlite] }
    exclude: [{ node: 22, db: sqlite }]
    optional: ${optional}
- name: after
  needs: [compat]
  run: touch "$OUT/after"
`;

  const CELLS = ['compat (node=18, db=pg)', 'compat (node=18, db=sqlite)', 'compat (node=20, db=pg)', 'compat (node=20, db=sqlite)', 'compat (node=22, db=pg)'];

  it('runs a stage per cell; optional cells may crash; dependents wait for every cell', async () => {
    await setup(MATRIX('18', '[{ node: 18 }]'));
    const id = await startRun(agent, { trigger: 'manual' });
    const run = await finished(agent, id);
    assert.equal(run.status, 'succeeded', JSON.stringify(run.stages));
    assert.deepEqual(run.stages.map((s) => s.name), ['compat', ...CELLS, 'after']);
    assert.deepEqual(fs.readFileSync(path.join(out, 'cells'), 'utf8').trim().split('\n').sort(), ['18/pg', '18/sqlite', '20/pg', '20/sqlite', '22/pg']);
    assert.ok(fs.existsSync(path.join(out, 'after')));
    const status = (name: string) => run.stages.find((s) => s.name === name)!;
    assert.deepEqual(CELLS.map((c) => status(c).status), ['failed', 'failed', 'succeeded', 'succeeded', 'succeeded']);
    assert.match(status(CELLS[0]).message!, /killed by SIGSEGV/);
    assert.equal(status('compat').status, 'succeeded');
    assert.equal(status('compat').message, 'every required cell succeeded; optional: node=18, db=pg (failed); node=18, db=sqlite (failed)');

    // The grouping is in each cell's stage events.
    const cells = new Map<string, StageInfo>();
    for (const e of eventsOf(agent, id)) if (e.type === 'stage.changed' && e.stage.matrix) cells.set(e.stage.name, e.stage);
    assert.deepEqual(cells.get(CELLS[1])!.matrix, { of: 'compat', cell: { node: '18', db: 'sqlite' }, optional: true });
    assert.deepEqual(cells.get(CELLS[4])!.matrix, { of: 'compat', cell: { node: '22', db: 'pg' }, optional: false });
    assert.equal(cells.get(CELLS[4])!.kind, 'matrix');
    // ... and in the run's record, as the API and the editor read it.
    const detail = agent.store.getRun(id)!;
    assert.deepEqual(detail.stages.find((s) => s.name === CELLS[1])!.matrix, { of: 'compat', cell: { node: '18', db: 'sqlite' }, optional: true });
    assert.equal(detail.stages.find((s) => s.name === 'compat')!.matrix, undefined);

    // Each cell read its own report.
    const tests = agent.store.getTests(id);
    assert.deepEqual(
      tests.map((t) => [t.stage, t.results.map((r) => r.name)]).sort(),
      CELLS.map((c) => [c, [`works on ${c.replace(/^compat \(node=(\w+), db=(\w+)\)$/, '$1/$2')}`]]).sort(),
    );
  });

  it('fails the matrix stage when a required cell crashes, and skips what needs it', async () => {
    await setup(MATRIX('20', '[]'));
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.equal(run.status, 'failed');
    const compat = run.stages.find((s) => s.name === 'compat')!;
    assert.equal(compat.status, 'failed');
    assert.equal(compat.message, '2 of 5 cells did not succeed: node=20, db=pg (failed); node=20, db=sqlite (failed)');
    assert.deepEqual(
      run.stages.filter((s) => s.name !== 'compat').map((s) => s.status),
      ['succeeded', 'succeeded', 'failed', 'failed', 'succeeded', 'skipped'],
    );
    assert.equal(run.stages.find((s) => s.name === 'after')!.message, 'needs compat (failed)');
    assert.equal(run.reason, 'compat, compat (node=20, db=pg), compat (node=20, db=sqlite) did not succeed');
    assert.ok(!fs.existsSync(path.join(out, 'after')));
  });

  it('skips every cell of a matrix whose needs failed', async () => {
    await setup(`
- name: build
  run: exit 3
- name: compat
  kind: matrix
  needs: [build]
  run: touch "$OUT/ran"
  matrix: { axes: { node: [18, 20] } }
`);
    const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
    assert.deepEqual(
      run.stages.map((s) => [s.name, s.status, s.message]),
      [
        ['build', 'failed', 'exit code 3 in step 1 (exit 3)'],
        ['compat', 'skipped', 'needs build (failed)'],
        ['compat (node=18)', 'skipped', 'needs build (failed)'],
        ['compat (node=20)', 'skipped', 'needs build (failed)'],
      ],
    );
    assert.ok(!fs.existsSync(path.join(out, 'ran')));
  });

  it('cancels every running cell with the run, and the matrix stage with them', async () => {
    await setup(`
- name: compat
  kind: matrix
  run: touch "$OUT/started-$MATRIX_NODE"; sleep 30
  matrix: { axes: { node: [18, 20] } }
`);
    const id = await startRun(agent, { trigger: 'manual' });
    await until(() => fs.existsSync(path.join(out, 'started-18')) && fs.existsSync(path.join(out, 'started-20')), 'both cells to start');
    agent.engine.cancel(id);
    const run = await finished(agent, id);
    assert.equal(run.status, 'cancelled');
    assert.deepEqual(
      run.stages.map((s) => [s.name, s.status]),
      [
        ['compat', 'cancelled'],
        ['compat (node=18)', 'cancelled'],
        ['compat (node=20)', 'cancelled'],
      ],
    );
    assert.equal(run.stages[0].message, 'cancelled by request');
  });
});
