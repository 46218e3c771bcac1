import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ConfigState, ConveyorConfig, Diagnostic } from '../../../agent/protocol';
import {
  CONFIG_FILE_NAMES,
  SCHEMA_PATH,
  analyzeConfigText,
  formatDiagnosticLine,
  loadConfig,
} from '../../../agent/config';

const FILE = 'conveyor.yml';

/** The diagnostics of a text, one compiler-style line each. */
function lines(text: string): string[] {
  return analyzeConfigText(text, FILE).diagnostics.map(formatDiagnosticLine);
}

function only(text: string): Diagnostic {
  const state = analyzeConfigText(text, FILE);
  assert.equal(state.diagnostics.length, 1, state.diagnostics.map(formatDiagnosticLine).join('\n'));
  return state.diagnostics[0];
}

function config(text: string, opts?: { defaultName?: string }, file = FILE): ConveyorConfig {
  const state = analyzeConfigText(text, file, opts);
  assert.ok(state.valid, state.diagnostics.map(formatDiagnosticLine).join('\n'));
  return state.config;
}

function yaml(...rows: string[]): string {
  return rows.join('\n') + '\n';
}

describe('config analyzer: one golden diagnostic per code', () => {
  it('yaml-syntax: an unclosed quote, at the opening quote', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  name: "hello', '  stages: [{name: a, run: x}]')), [
      'conveyor.yml:2:9: error: the quoted string has no closing " (fix: close the quoted string, or remove its opening quote)',
    ]);
  });

  it('yaml-syntax: a key indented less than its siblings', () => {
    const text = yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '     needs: build');
    assert.deepEqual(lines(text), [
      'conveyor.yml:5:6: error: "needs" is indented by 5 spaces, which lines up with nothing above it (fix: indent it by 6 spaces, like "run" on line 4)',
    ]);
    const d = only(text);
    assert.deepEqual(d.range, { start: { line: 5, column: 6 }, end: { line: 5, column: 11 } });
  });

  it('yaml-syntax: a key indented more than its siblings', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '       needs: build')), [
      'conveyor.yml:5:8: error: "needs" is indented by 7 spaces, which lines up with nothing above it (fix: indent it by 6 spaces, like "run" on line 4)',
    ]);
  });

  it('yaml-syntax: a tab used for indentation', () => {
    assert.deepEqual(lines('pipeline:\n\tstages: []\n'), [
      'conveyor.yml:2:1: error: tabs are not allowed as indentation (fix: indent with spaces: YAML does not allow tabs for indentation)',
    ]);
  });

  it('yaml-syntax: an empty file', () => {
    const state = analyzeConfigText('', FILE);
    assert.equal(state.valid, false);
    assert.deepEqual(state.diagnostics.map(formatDiagnosticLine), [
      'conveyor.yml:1:1: error: the config is empty (fix: start with a pipeline, e.g. "pipeline: {stages: [{name: test, run: npm test}]}")',
    ]);
    assert.equal(state.diagnostics[0].code, 'yaml-syntax');
  });

  it('yaml-syntax: a file of comments only', () => {
    assert.deepEqual(lines('# nothing yet\n\n'), [
      'conveyor.yml:1:1: error: the config is empty: it holds only comments (fix: start with a pipeline, e.g. "pipeline: {stages: [{name: test, run: npm test}]}")',
    ]);
  });

  it('yaml-syntax: a list at the root', () => {
    const d = only(yaml('- name: test', '  run: npm test'));
    assert.equal(d.code, 'yaml-syntax');
    assert.equal(
      formatDiagnosticLine(d),
      'conveyor.yml:1:1: error: the config must be a mapping of keys such as "pipeline:", not a list (fix: write "key: value" lines starting at column 1, e.g. "pipeline: {stages: [{name: test, run: npm test}]}")',
    );
  });

  it('yaml-syntax: a second document', () => {
    const d = only(yaml('pipeline: {stages: [{name: a, run: x}]}', '---', 'pipeline: {stages: [{name: b, run: y}]}'));
    assert.equal(
      formatDiagnosticLine(d),
      'conveyor.yml:2:1: error: a second YAML document starts here; conveyor.yml holds a single document (fix: remove this "---" and merge what follows into the document above)',
    );
    assert.deepEqual(d.range, { start: { line: 2, column: 1 }, end: { line: 2, column: 4 } });
  });

  it('unknown-key: with a close match', () => {
    const d = only(yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '      neds: [build]'));
    assert.equal(d.code, 'unknown-key');
    assert.equal(
      formatDiagnosticLine(d),
      'conveyor.yml:5:7: error: unknown key "neds" in stage "test" (fix: did you mean "needs"?)',
    );
    assert.deepEqual(d.range, { start: { line: 5, column: 7 }, end: { line: 5, column: 11 } });
  });

  it('unknown-key: without a close match, listing the allowed keys', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '      flavour: vanilla')), [
      'conveyor.yml:5:7: error: unknown key "flavour" in stage "test" (fix: remove it; allowed keys: name, kind, executor, run, needs, env, workdir, timeout, retries, when, report, artifacts, environment, artifact, image, verifies, probes, services, matrix, load, scan)',
    ]);
  });

  it('unknown-key: a pipeline key written at the top level', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  name: app', 'stages:', '  - name: test', '    run: npm test')), [
      'conveyor.yml:1:1: error: "pipeline" has no "stages" (fix: add "stages: [{name: test, run: npm test}]")',
      'conveyor.yml:3:1: error: unknown key "stages" at the top level (fix: move "stages" under "pipeline:")',
    ]);
  });

  it('wrong-type: says what it found', () => {
    const d = only(yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '      retries: two'));
    assert.equal(d.code, 'wrong-type');
    assert.equal(
      formatDiagnosticLine(d),
      'conveyor.yml:5:16: error: "retries" must be an integer from 0 to 10, not "two" (fix: write an integer from 0 to 10, e.g. "retries: 1")',
    );
    assert.deepEqual(d.range, { start: { line: 5, column: 16 }, end: { line: 5, column: 19 } });
  });

  it('missing-key: a stage without run, at the first line of the stage', () => {
    const d = only(yaml('pipeline:', '  stages:', '    - name: test', '      needs: []'));
    assert.equal(d.code, 'missing-key');
    assert.equal(formatDiagnosticLine(d), 'conveyor.yml:3:7: error: stage "test" has no "run" (fix: add "run: npm test")');
  });

  it('missing-key: a mapping under a key, at that key', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  name: app')), [
      'conveyor.yml:1:1: error: "pipeline" has no "stages" (fix: add "stages: [{name: test, run: npm test}]")',
    ]);
  });

  it('invalid-value: an enum with did-you-mean', () => {
    const d = only(yaml('pipeline:', '  stages:', '    - name: test', '      kind: comand', '      run: npm test'));
    assert.equal(d.code, 'invalid-value');
    assert.equal(
      formatDiagnosticLine(d),
      'conveyor.yml:4:13: error: "kind" must be one of "command", "image", "deploy", "smoke", "integration", "acceptance", "matrix", "load" or "scan", not "comand" (fix: did you mean "command"?)',
    );
  });

  it('invalid-value: an enum without a close match lists the values', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  onNewRun: replace', '  stages: [{name: a, run: x}]')), [
      'conveyor.yml:2:13: error: "onNewRun" must be "queue" or "supersede", not "replace" (fix: write "queue" or "supersede")',
    ]);
  });

  it('invalid-value: a bad duration names the accepted forms', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '      timeout: soon')), [
      'conveyor.yml:5:16: error: "timeout" must be a number of seconds or a duration such as 90s, 10m, 1h30m or 500ms (units: h, m, s, ms), not "soon" (fix: write a number of seconds or a duration such as 90s, 10m, 1h30m or 500ms, e.g. "timeout: 10m")',
    ]);
  });

  it('invalid-value: a duration written in words gets its accepted spelling', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '      timeout: 10 min')), [
      'conveyor.yml:5:16: error: "timeout" must be a number of seconds or a duration such as 90s, 10m, 1h30m or 500ms (units: h, m, s, ms), not "10 min" (fix: did you mean "10m"?)',
    ]);
  });

  it('unknown-need: at the entry, with did-you-mean among stage names', () => {
    const d = only(
      yaml('pipeline:', '  stages:', '    - name: build', '      run: make', '    - name: test', '      run: npm test', '      needs: [biuld]'),
    );
    assert.equal(d.code, 'unknown-need');
    assert.equal(
      formatDiagnosticLine(d),
      'conveyor.yml:7:15: error: stage "test" needs "biuld", but no stage has that name (fix: did you mean "build"?)',
    );
    assert.deepEqual(d.range, { start: { line: 7, column: 15 }, end: { line: 7, column: 20 } });
  });

  it('cycle: three stages, named in order, with every edge related', () => {
    const text = yaml(
      'pipeline:',
      '  stages:',
      '    - name: build',
      '      run: make',
      '      needs: deploy',
      '    - name: test',
      '      run: npm test',
      '      needs: [build]',
      '    - name: deploy',
      '      run: ./deploy.sh',
      '      needs: [test]',
    );
    const d = only(text);
    assert.equal(d.code, 'cycle');
    assert.equal(
      formatDiagnosticLine(d),
      'conveyor.yml:5:14: error: cycle: build → deploy → test → build (fix: remove "build" from the needs of "test", or another need of the cycle)',
    );
    assert.deepEqual(
      d.related?.map((r) => [r.file, r.range.start.line, r.range.start.column, r.range.end.column, r.message]),
      [
        [FILE, 5, 14, 20, '"build" needs "deploy"'],
        [FILE, 11, 15, 19, '"deploy" needs "test"'],
        [FILE, 8, 15, 20, '"test" needs "build"'],
      ],
    );
  });

  it('cycle: a stage that needs itself', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - {name: a, run: x, needs: a}')), [
      'conveyor.yml:3:32: error: cycle: a → a (fix: remove "a" from its own needs)',
    ]);
  });

  it('duplicate-name: at the second name, related to the first', () => {
    const d = only(yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '    - name: test', '      run: npm run e2e'));
    assert.equal(d.code, 'duplicate-name');
    assert.equal(formatDiagnosticLine(d), 'conveyor.yml:5:13: error: duplicate stage name "test" (fix: rename this stage, e.g. "test-2")');
    assert.deepEqual(d.related, [
      { file: FILE, range: { start: { line: 3, column: 13 }, end: { line: 3, column: 17 } }, message: 'stage "test" first defined here' },
    ]);
  });

  it('duplicate-name: a key written twice in a mapping', () => {
    const d = only(yaml('pipeline:', '  stages: [{name: a, run: x}]', '  stages: [{name: b, run: y}]'));
    assert.equal(d.code, 'duplicate-name');
    assert.equal(
      formatDiagnosticLine(d),
      'conveyor.yml:3:3: error: duplicate key "stages": each key may appear once in a mapping (fix: remove one of the two "stages" keys, or merge their values)',
    );
    assert.equal(d.related?.[0].range.start.line, 2);
  });

  it('missing-file and unreadable-file come from loadConfig', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-config-'));
    try {
      const missing = await loadConfig(dir);
      assert.equal(missing.valid, false);
      assert.equal(missing.file, path.join(dir, 'conveyor.yml'));
      assert.deepEqual(missing.diagnostics.map(formatDiagnosticLine), [
        `${path.join(dir, 'conveyor.yml')}:1:1: error: no conveyor.yml or conveyor.yaml in ${dir} (fix: create conveyor.yml there, e.g. "pipeline: {stages: [{name: test, run: npm test}]}")`,
      ]);
      assert.equal(missing.diagnostics[0].code, 'missing-file');

      fs.mkdirSync(path.join(dir, 'conveyor.yml'));
      const unreadable = await loadConfig(dir);
      assert.equal(unreadable.valid, false);
      assert.deepEqual(unreadable.diagnostics.map(formatDiagnosticLine), [
        `${path.join(dir, 'conveyor.yml')}:1:1: error: cannot read conveyor.yml: it is a folder (fix: replace the folder with a conveyor.yml file)`,
      ]);
      assert.equal(unreadable.diagnostics[0].code, 'unreadable-file');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config analyzer: defaults and normalization', () => {
  const minimal = yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test');

  it('fills every default', () => {
    const c = config(minimal, { defaultName: 'demo' });
    assert.deepEqual(c, {
      pipeline: {
        name: 'demo',
        branches: [],
        maxParallel: 4,
        onNewRun: 'queue',
        stages: [
          {
            name: 'test',
            kind: 'command',
            run: ['npm test'],
            needs: [],
            env: {},
            workdir: '.',
            timeoutMs: 60 * 60 * 1000,
            retries: 0,
            when: ['commit', 'manual'],
            artifacts: [],
          },
        ],
      },
      environments: [],
      watch: { include: ['**/*'], exclude: [], stages: [], tests: [] },
      secrets: [],
      gitops: { repo: null, branch: 'conveyor/state', path: 'environments', intervalMs: 30_000 },
      alerts: {
        pipelineFailed: { branches: [] },
        slower: { percent: 50, minSamples: 5 },
        drift: {},
        rollback: {},
        vulnerability: { severity: 'high' },
        flaky: { window: 10, flips: 2 },
        webhook: null,
      },
    } satisfies ConveyorConfig);
  });

  it('turns single strings into lists: run, needs, when, artifacts', () => {
    const c = config(
      yaml(
        'pipeline:',
        '  stages:',
        '    - name: build',
        '      run: make',
        '    - name: test',
        '      run: npm test',
        '      needs: build',
        '      when: save',
        '      artifacts: out/report.html',
      ),
    );
    const test = c.pipeline.stages[1];
    assert.deepEqual(test.run, ['npm test']);
    assert.deepEqual(test.needs, ['build']);
    assert.deepEqual(test.when, ['save']);
    assert.deepEqual(test.artifacts, ['out/report.html']);
  });

  it('keeps lists in the order written', () => {
    const c = config(
      yaml(
        'pipeline:',
        '  branches: [main, release]',
        '  stages:',
        '    - name: c',
        '      run: [one, two, three]',
        '    - name: a',
        '      run: x',
        '      needs: [c]',
        'environments:',
        '  zeta: {}',
        '  "1": { runtime: docker }',
        '  alpha: { promotion: auto }',
        'secrets: [B_TOKEN, A_TOKEN]',
      ),
    );
    assert.deepEqual(c.pipeline.branches, ['main', 'release']);
    assert.deepEqual(c.pipeline.stages.map((s) => s.name), ['c', 'a']);
    assert.deepEqual(c.pipeline.stages[0].run, ['one', 'two', 'three']);
    assert.deepEqual(c.environments.map((e) => [e.name, e.runtime, e.promotion]), [
      ['zeta', 'process', 'manual'],
      ['1', 'docker', 'manual'],
      ['alpha', 'process', 'auto'],
    ]);
    assert.deepEqual(c.secrets, ['B_TOKEN', 'A_TOKEN']);
  });

  it('reads durations as milliseconds', () => {
    const cases: [string, number][] = [
      ['90s', 90_000],
      ['10m', 600_000],
      ['1h30m', 5_400_000],
      ['500ms', 500],
      ['45', 45_000],
      ['0.5', 500],
      ['0', 0],
      ['2h', 7_200_000],
      ['1m30s', 90_000],
    ];
    for (const [written, ms] of cases) {
      const c = config(yaml('pipeline:', '  stages:', '    - name: t', '      run: x', `      timeout: ${written}`));
      assert.equal(c.pipeline.stages[0].timeoutMs, ms, written);
    }
  });

  it('passes env numbers and booleans as written, as strings', () => {
    const c = config(
      yaml(
        'pipeline:',
        '  stages:',
        '    - name: t',
        '      run: x',
        '      env:',
        '        CI: 1',
        '        DEBUG: false',
        '        VERSION: 1.10',
        '        NAME: app',
        '        QUOTED: "007"',
      ),
    );
    assert.deepEqual(c.pipeline.stages[0].env, { CI: '1', DEBUG: 'false', VERSION: '1.10', NAME: 'app', QUOTED: '007' });
  });

  it('names the pipeline: as written, else opts.defaultName, else the folder, else "pipeline"', () => {
    const named = yaml('pipeline:', '  name: hello-service', '  stages: [{name: a, run: x}]');
    const unnamed = yaml('pipeline:', '  stages: [{name: a, run: x}]');
    assert.equal(config(named, { defaultName: 'other' }).pipeline.name, 'hello-service');
    assert.equal(config(unnamed, { defaultName: 'from-opts' }).pipeline.name, 'from-opts');
    assert.equal(config(unnamed, {}, path.join('work', 'my-service', 'conveyor.yml')).pipeline.name, 'my-service');
    assert.equal(config(unnamed, {}, 'conveyor.yml').pipeline.name, 'pipeline');
  });

  it('reads anchors, aliases and merge keys', () => {
    const c = config(
      yaml(
        'x-defaults: &defaults',
        '  retries: 2',
        '  env: { CI: true }',
        'pipeline:',
        '  stages:',
        '    - name: unit',
        '      <<: *defaults',
        '      run: npm test',
        '    - name: e2e',
        '      <<: *defaults',
        '      retries: 0',
        '      run: npm run e2e',
      ),
    );
    assert.deepEqual(
      c.pipeline.stages.map((s) => [s.name, s.retries, s.env]),
      [
        ['unit', 2, { CI: 'true' }],
        ['e2e', 0, { CI: 'true' }],
      ],
    );
  });

  it('fills environment defaults and keeps settings apart from runtime and promotion', () => {
    const c = config(yaml('pipeline: {stages: [{name: a, run: x}]}', 'environments:', '  staging:', '  prod: { runtime: kubernetes, promotion: auto }'));
    const defaults = {
      port: null,
      strategy: 'recreate',
      health: { kind: 'tcp', timeoutMs: 30_000, intervalMs: 500 },
      start: [],
      containerPort: 8080,
      env: {},
      replicas: 1,
      preview: false,
      settings: {},
      reconcile: { selfHeal: false, prune: false, manual: false },
      imageUpdate: null,
    };
    assert.deepEqual(c.environments, [
      { name: 'staging', runtime: 'process', promotion: 'manual', ...defaults },
      { name: 'prod', runtime: 'kubernetes', promotion: 'auto', ...defaults },
    ]);
  });

  it('reads the deploy settings of an environment', () => {
    const c = config(
      yaml(
        'pipeline: {stages: [{name: a, run: x}]}',
        'environments:',
        '  staging:',
        '    port: 9090',
        '    strategy: blue-green',
        '    health: { http: /healthz, timeout: 10s, interval: 250ms }',
        '    start: node src/server.js',
        '    env: { LOG: 1 }',
        '    resources: { memory: 256m }',
        '  prod: { start: [node, server.js], health: { command: "true" } }',
      ),
    );
    const [staging, prod] = c.environments;
    assert.equal(staging.port, 9090);
    assert.equal(staging.strategy, 'blue-green');
    assert.deepEqual(staging.health, { kind: 'http', path: '/healthz', timeoutMs: 10_000, intervalMs: 250 });
    assert.deepEqual(staging.start, ['/bin/sh', '-c', 'node src/server.js']);
    assert.deepEqual(staging.env, { LOG: '1' });
    assert.deepEqual(staging.settings.resources, { memory: '256m' });
    assert.deepEqual(prod.start, ['node', 'server.js']);
    assert.deepEqual(prod.health, { kind: 'command', command: 'true', timeoutMs: 30_000, intervalMs: 500 });
  });

  it('deploy stages: an environment that exists, an artifact stage they need', () => {
    const text = yaml(
      'pipeline:',
      '  stages:',
      '    - name: package',
      '      run: x',
      '      artifacts: [a.tgz]',
      '    - name: deploy',
      '      kind: deploy',
      '      environment: stagign',
      '      artifact: package',
      '    - name: other',
      '      kind: deploy',
      '      needs: [package]',
      '    - name: cmd',
      'environments: { staging: {} }',
    );
    assert.deepEqual(lines(text), [
      'conveyor.yml:8:20: error: stage "deploy" deploys to "stagign", but no environment has that name (fix: did you mean "staging"?)',
      'conveyor.yml:9:17: error: stage "deploy" deploys the artifact of "package" but does not need it (fix: add "package" to its needs)',
      'conveyor.yml:10:7: error: stage "other" has no "environment" (fix: add "environment: staging")',
      'conveyor.yml:13:7: error: stage "cmd" has no "run" (fix: add "run: npm test")',
    ]);
  });

  it('fills watch defaults and keeps what is written', () => {
    const c = config(yaml('pipeline: {stages: [{name: test, run: x}]}', 'watch: { exclude: ["**/*.md"], stages: [test], tests: ["test/**/*.test.js"] }'));
    assert.deepEqual(c.watch, { include: ['**/*'], exclude: ['**/*.md'], stages: ['test'], tests: ['test/**/*.test.js'] });
  });
});

describe('config analyzer: the schema file', () => {
  type Node = Record<string, unknown>;
  const schema = JSON.parse(fs.readFileSync(SCHEMA_PATH, 'utf8')) as Node;

  function walk(node: unknown, at: string, visit: (n: Node, at: string) => void): void {
    if (Array.isArray(node)) {
      node.forEach((x, i) => walk(x, `${at}/${i}`, visit));
      return;
    }
    if (node === null || typeof node !== 'object') return;
    visit(node as Node, at);
    for (const [k, v] of Object.entries(node as Node)) {
      if (k === 'examples' || k === 'default' || k === 'enum' || k === 'const') continue;
      walk(v, `${at}/${k}`, visit);
    }
  }

  it('is found at SCHEMA_PATH and is the one in the source tree', () => {
    assert.ok(fs.existsSync(SCHEMA_PATH), SCHEMA_PATH);
    const source = path.resolve(__dirname, '..', '..', '..', '..', 'agent', 'config', 'conveyor.schema.json');
    assert.deepEqual(schema, JSON.parse(fs.readFileSync(source, 'utf8')));
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  });

  it('describes every property', () => {
    const missing: string[] = [];
    walk(schema, '#', (n, at) => {
      const props = n.properties as Record<string, Node> | undefined;
      for (const [key, sub] of Object.entries(props ?? {})) {
        const target =
          typeof sub.$ref === 'string'
            ? ((schema.definitions as Record<string, Node>)[sub.$ref.replace('#/definitions/', '')] ?? {})
            : sub;
        if (typeof sub.description !== 'string' && typeof target.description !== 'string') missing.push(`${at}/properties/${key}`);
      }
    });
    assert.deepEqual(missing, []);
  });

  it('closes every object: additionalProperties false, or a schema for map values', () => {
    const open: string[] = [];
    walk(schema, '#', (n, at) => {
      const types = Array.isArray(n.type) ? n.type : [n.type];
      if (!types.includes('object')) return;
      if (n.additionalProperties === false) return;
      // Maps (environments, env) constrain their keys and values instead.
      if (typeof n.additionalProperties === 'object' && typeof n.propertyNames === 'object') return;
      open.push(at);
    });
    assert.deepEqual(open, []);
  });

  it('lists the config file names', () => {
    assert.deepEqual([...CONFIG_FILE_NAMES], ['conveyor.yml', 'conveyor.yaml']);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-config-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads conveyor.yml and names the pipeline after the folder', async () => {
    fs.writeFileSync(path.join(dir, 'conveyor.yml'), '\ufeffpipeline:\n  stages: [{name: a, run: x}]\n');
    const state: ConfigState = await loadConfig(dir);
    assert.ok(state.valid, state.diagnostics.map(formatDiagnosticLine).join('\n'));
    assert.equal(state.file, path.join(dir, 'conveyor.yml'));
    assert.equal(state.config.pipeline.name, path.basename(dir));
  });

  it('reads conveyor.yaml when there is no conveyor.yml', async () => {
    fs.writeFileSync(path.join(dir, 'conveyor.yaml'), 'pipeline:\n  stages: [{name: a, run: x}]\n  neds: 1\n');
    const state = await loadConfig(dir);
    assert.equal(state.valid, false);
    assert.equal(state.file, path.join(dir, 'conveyor.yaml'));
    assert.deepEqual(state.diagnostics.map(formatDiagnosticLine), [
      `${path.join(dir, 'conveyor.yaml')}:3:3: error: unknown key "neds" in "pipeline" (fix: remove it; allowed keys: name, branches, maxParallel, onNewRun, stages)`,
    ]);
  });

  it('warns when both names exist, and uses conveyor.yml', async () => {
    fs.writeFileSync(path.join(dir, 'conveyor.yml'), 'pipeline: {stages: [{name: a, run: x}]}\n');
    fs.writeFileSync(path.join(dir, 'conveyor.yaml'), 'pipeline: {stages: [{name: b, run: y}]}\n');
    const state = await loadConfig(dir);
    assert.ok(state.valid);
    assert.equal(state.config.pipeline.stages[0].name, 'a');
    assert.deepEqual(state.diagnostics.map(formatDiagnosticLine), [
      `${path.join(dir, 'conveyor.yaml')}:1:1: warning: conveyor.yaml is ignored: conveyor.yml is the config (fix: keep a single config file: merge conveyor.yaml into conveyor.yml and delete it)`,
    ]);
  });
});
