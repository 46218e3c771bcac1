import * as assert from 'node:assert/strict';
import { analyzeConfigText, formatDiagnosticLine } from '../../../agent/config';
import type { StageConfig } from '../../../agent/protocol';

const FILE = 'conveyor.yml';

function yaml(...rows: string[]): string {
  return rows.join('\n') + '\n';
}

/** The diagnostics of a text, one compiler-style line each. */
function lines(text: string): string[] {
  return analyzeConfigText(text, FILE).diagnostics.map(formatDiagnosticLine);
}

function stages(text: string): StageConfig[] {
  const state = analyzeConfigText(text, FILE);
  assert.ok(state.valid, state.diagnostics.map(formatDiagnosticLine).join('\n'));
  return state.config.pipeline.stages;
}

const ENVS = ['environments:', '  staging: { promotion: auto }', '  production: { promotion: manual }'];

describe('config analyzer: the test stage kinds, golden diagnostics', () => {
  it('an environment no one declared, at its line, for each kind that tests one', () => {
    const text = yaml(
      'pipeline:',
      '  stages:',
      '    - name: smoke',
      '      kind: smoke',
      '      environment: stagin',
      '      probes: [/healthz]',
      '    - name: acceptance',
      '      kind: acceptance',
      '      environment: qa',
      '      run: npm run e2e',
      '    - name: perf',
      '      kind: load',
      '      load: { path: / }',
      ...ENVS,
    );
    assert.deepEqual(lines(text), [
      'conveyor.yml:5:20: error: stage "smoke" tests "stagin", but no environment has that name (fix: did you mean "staging"?)',
      'conveyor.yml:9:20: error: stage "acceptance" tests "qa", but no environment has that name (fix: name one of the environments: staging, production)',
      'conveyor.yml:11:7: error: stage "perf" has no "environment" (fix: add "environment: staging")',
    ]);
  });

  it('load thresholds in the wrong units, each at its line', () => {
    const text = yaml(
      'pipeline:',
      '  stages:',
      '    - name: perf',
      '      kind: load',
      '      environment: staging',
      '      load:',
      '        path: /api',
      '        thresholds:',
      '          p95: < 200',
      '          errorRate: < 1ms',
      '          throughput: "> 5 rps"',
      '          p99: < 1s',
      '          p59: < 1s',
      ...ENVS,
    );
    assert.deepEqual(lines(text), [
      'conveyor.yml:9:16: error: threshold "p95" of stage "perf": p95 takes a duration such as "< 200ms"; "< 200" has no unit (use ms or s) (fix: write p95: "< 200ms")',
      'conveyor.yml:10:22: error: threshold "errorRate" of stage "perf": errorRate takes a percentage such as "< 1%" or a fraction up to 1 such as "< 0.01"; "< 1ms" has the unit "ms" (use % or a fraction) (fix: write errorRate: "< 1%")',
      'conveyor.yml:11:23: error: threshold "throughput" of stage "perf": throughput takes a rate such as ">= 500/s"; "> 5 rps" has the unit "rps" (use /s or req/s) (fix: write throughput: ">= 100/s")',
      'conveyor.yml:13:11: error: unknown key "p59" in "load.thresholds" of stage "perf" (fix: did you mean "p50"?)',
    ]);
  });

  it('a threshold starting with ">" that YAML reads as a block scalar: says to quote it', () => {
    const text = yaml('pipeline:', '  stages:', '    - name: perf', '      kind: load', '      environment: staging', '      load:', '        path: /', '        thresholds:', '          throughput: >= 100/s', ...ENVS);
    assert.deepEqual(lines(text), [
      'conveyor.yml:9:24: error: block scalar header includes extra characters: >= (fix: quote a value that starts with ">" or "|", e.g. throughput: ">= 100/s"; for a block scalar, write nothing after "|" or ">" but an indentation or chomping indicator)',
    ]);
  });

  it('what each kind needs, and keys written for another kind', () => {
    const text = yaml(
      'pipeline:',
      '  stages:',
      '    - name: smoke',
      '      kind: smoke',
      '      environment: staging',
      '    - name: it',
      '      kind: integration',
      '      run: npm run test:it',
      '    - name: compat',
      '      kind: matrix',
      '      matrix: { axes: { node: [18] } }',
      '    - name: perf',
      '      kind: load',
      '      environment: staging',
      '    - name: unit',
      '      run: npm test',
      '      probes: [/healthz]',
      ...ENVS,
    );
    assert.deepEqual(lines(text), [
      'conveyor.yml:3:7: error: stage "smoke" has no "probes" (fix: add "probes: [/healthz]")',
      'conveyor.yml:6:7: error: stage "it" has no "services" (fix: add "services: {db: {image: \"postgres:16\", port: 5432}}")',
      'conveyor.yml:9:7: error: stage "compat" has no "run" (fix: add "run: npm test")',
      'conveyor.yml:12:7: error: stage "perf" has no "load" (fix: add "load: {path: /, connections: 10, duration: 10s, thresholds: {p95: \"< 200ms\"}}")',
      'conveyor.yml:17:7: error: "probes" is for stages of kind smoke, and stage "unit" is of kind command (fix: add "kind: smoke" to the stage, or remove "probes")',
    ]);
  });

  it('probes: one target each, a pattern that compiles, keys with did-you-mean', () => {
    const text = yaml(
      'pipeline:',
      '  stages:',
      '    - name: smoke',
      '      kind: smoke',
      '      environment: staging',
      '      probes:',
      '        - method: POST',
      '        - path: /a',
      '          url: http://127.0.0.1:1/a',
      '        - path: /b',
      '          matches: "(["',
      '          statsu: 200',
      '        - healthz',
      ...ENVS,
    );
    assert.deepEqual(lines(text), [
      'conveyor.yml:7:11: error: probe 1 of stage "smoke" has no "path" (fix: add "path: /healthz" (a path on the environment\'s URL), or an absolute "url")',
      'conveyor.yml:9:11: error: probe 2 of stage "smoke" has both "path" and "url" (fix: keep one: "path" on the environment\'s URL, or an absolute "url")',
      'conveyor.yml:11:20: error: "matches" of probe 3 of stage "smoke" is not a regular expression: /([/: Unterminated character class (fix: write a JavaScript regular expression, e.g. "matches: ^ok$")',
      'conveyor.yml:12:11: error: unknown key "statsu" in probe 3 of stage "smoke" (fix: did you mean "status"?)',
      'conveyor.yml:13:11: error: "probes" entry 4 must be a path starting with "/", not "healthz" (fix: write a path such as /healthz, or a mapping with "path" and what the answer must be, e.g. "- /healthz")',
    ]);
  });

  it('services: one health check each, and names whose variables would collide', () => {
    const text = yaml(
      'pipeline:',
      '  stages:',
      '    - name: it',
      '      kind: integration',
      '      run: npm run test:it',
      '      services:',
      '        web: { image: nginx, port: 80, health: { http: /, tcp: true } }',
      '        my-db: { image: postgres:16, port: 5432, health: { tcp: false } }',
      '        my_db: { image: postgres:16, port: 5433 }',
      '        cache: { image: redis }',
    );
    assert.deepEqual(lines(text), [
      'conveyor.yml:7:59: error: "health" of service "web" of stage "it" has both "http" and "tcp" (fix: keep one check: http, tcp or command)',
      'conveyor.yml:8:65: error: "tcp: false" of service "my-db" of stage "it" leaves no way to tell the service is ready (fix: write "tcp: true", or an "http" or "command" check)',
      'conveyor.yml:9:9: error: services "my-db" and "my_db" would both set MY_DB_HOST, MY_DB_PORT and MY_DB_URL (fix: rename one of them)',
      'conveyor.yml:10:9: error: service "cache" of stage "it" has no "port" (fix: add "port: 5432")',
    ]);
  });

  it('matrix: exclude and optional name axes and values it has; something is left to run', () => {
    const text = yaml(
      'pipeline:',
      '  stages:',
      '    - name: compat',
      '      kind: matrix',
      '      run: npm test',
      '      matrix:',
      '        axes: { node: [18, 20, 20], os: [linux] }',
      '        exclude: [{ nod: 18 }, { node: 16 }]',
      '        optional: [{ os: linx }]',
      '    - name: none',
      '      kind: matrix',
      '      run: npm test',
      '      matrix: { axes: { node: [18] }, exclude: [{ node: 18 }] }',
    );
    assert.deepEqual(lines(text), [
      'conveyor.yml:7:32: error: axis "node" lists "20" twice (fix: remove the second "20")',
      'conveyor.yml:8:21: error: "exclude" names the axis "nod", but the matrix has no such axis (fix: did you mean "node"?)',
      'conveyor.yml:8:40: error: "exclude" gives node the value "16", which axis "node" does not list (fix: did you mean "18"?)',
      'conveyor.yml:9:26: error: "optional" gives os the value "linx", which axis "os" does not list (fix: did you mean "linux"?)',
    ]);
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: none', '      kind: matrix', '      run: npm test', '      matrix: { axes: { node: [18] }, exclude: [{ node: 18 }] }')), [
      'conveyor.yml:6:7: error: "exclude" leaves stage "none" no combination to run (fix: remove an entry of "exclude")',
    ]);
    const many = `[${Array.from({ length: 9 }, (_, i) => i).join(', ')}]`;
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: big', '      kind: matrix', '      run: npm test', `      matrix: { axes: { a: ${many}, b: ${many} } }`)), [
      'conveyor.yml:6:7: error: stage "big" has 81 combinations; at most 64 may run (fix: remove values from the axes, or leave combinations out with "exclude")',
    ]);
  });

  it('scan sources: one source per entry', () => {
    const text = yaml('pipeline:', '  stages:', '    - name: audit', '      kind: scan', '      scan: { sources: [{ osv: advisories, npm-audit: true }, {}], failOn: hihg }');
    assert.deepEqual(lines(text), [
      'conveyor.yml:5:44: error: "sources" entry 1 has both "osv" and "npm-audit" (fix: write each source as its own entry: "- osv: advisories", "- npm-audit: true")',
      'conveyor.yml:5:63: error: "sources" entry 2 names no source (fix: write "osv: <folder>", "osv-api: true" or "npm-audit: true")',
      'conveyor.yml:5:76: error: "failOn" must be one of "low", "moderate", "high" or "critical", not "hihg" (fix: did you mean "high"?)',
    ]);
  });

  it('warns about a deploy to production that does not pass the acceptance stage', () => {
    const text = (productionNeeds: string) =>
      yaml(
        'pipeline:',
        '  stages:',
        '    - name: package',
        '      run: make',
        '      artifacts: [app.tgz]',
        '    - name: staging',
        '      kind: deploy',
        '      environment: staging',
        '      needs: [package]',
        '    - name: acceptance',
        '      kind: acceptance',
        '      environment: staging',
        '      needs: [staging]',
        '      run: npm run e2e',
        '    - name: production',
        '      kind: deploy',
        '      environment: production',
        `      needs: [${productionNeeds}]`,
        ...ENVS,
      );
    assert.deepEqual(lines(text('package')), [
      'conveyor.yml:18:7: warning: stage "production" deploys to "production" without passing the acceptance stage "acceptance" (fix: add "acceptance" to its needs)',
    ]);
    assert.deepEqual(lines(text('acceptance')), []);
    assert.equal(analyzeConfigText(text('package'), FILE).valid, true, 'a warning keeps the config valid');
  });
});

describe('config analyzer: the test stage kinds, the model', () => {
  it('smoke: probes with their defaults and lines, verifying the deploy stage it follows', () => {
    const [, , smoke] = stages(
      yaml(
        'pipeline:',
        '  stages:',
        '    - { name: package, run: make, artifacts: [app.tgz] }',
        '    - { name: staging, kind: deploy, environment: staging, needs: [package] }',
        '    - name: smoke',
        '      kind: smoke',
        '      environment: staging',
        '      needs: [staging]',
        '      probes:',
        '        - /healthz',
        '        - { url: "http://127.0.0.1:9/x", method: POST, status: [200, 201], contains: ok, json: { "$.id": 7 }, within: 1s, timeout: 2s, headers: { x-n: 1 } }',
        ...ENVS,
      ),
    );
    assert.equal(smoke.verifies, 'staging');
    assert.deepEqual(smoke.probes, [
      { name: 'GET /healthz', path: '/healthz', url: null, method: 'GET', headers: {}, body: null, status: [200], contains: [], matches: null, json: {}, withinMs: null, timeoutMs: 5000, location: { file: FILE, line: 10, column: 11 } },
      {
        name: 'POST http://127.0.0.1:9/x',
        path: null,
        url: 'http://127.0.0.1:9/x',
        method: 'POST',
        headers: { 'x-n': '1' },
        body: null,
        status: [200, 201],
        contains: ['ok'],
        matches: null,
        json: { '$.id': 7 },
        withinMs: 1000,
        timeoutMs: 2000,
        location: { file: FILE, line: 11, column: 11 },
      },
    ]);
  });

  it('smoke: an explicit verifies wins, and one after no deploy verifies nothing', () => {
    const [, smoke] = stages(yaml('pipeline:', '  stages:', '    - { name: build, run: make }', '    - { name: smoke, kind: smoke, environment: staging, needs: [build], probes: [/] }', ...ENVS));
    assert.equal(smoke.verifies, undefined);
  });

  it('integration: services in the order written, with commands, health and time-outs', () => {
    const [it] = stages(
      yaml(
        'pipeline:',
        '  stages:',
        '    - name: it',
        '      kind: integration',
        '      run: npm run test:it',
        '      services:',
        '        db: { image: postgres:16, port: 5432, env: { POSTGRES_PASSWORD: 1.0 }, health: { command: pg_isready }, timeout: 1m }',
        '        web: { image: nginx, command: [nginx, -g, daemon off;], port: 80, health: { http: /healthz } }',
        '        cache: { image: redis, port: 6379 }',
      ),
    );
    assert.deepEqual(it.services, [
      { name: 'db', image: 'postgres:16', command: [], env: { POSTGRES_PASSWORD: '1.0' }, port: 5432, health: { kind: 'command', command: ['sh', '-c', 'pg_isready'] }, timeoutMs: 60_000 },
      { name: 'web', image: 'nginx', command: ['nginx', '-g', 'daemon off;'], env: {}, port: 80, health: { kind: 'http', path: '/healthz' }, timeoutMs: 30_000 },
      { name: 'cache', image: 'redis', command: [], env: {}, port: 6379, health: { kind: 'tcp' }, timeoutMs: 30_000 },
    ]);
  });

  it('matrix: values as written, and every cell that runs, the first axis slowest', () => {
    const [compat] = stages(
      yaml(
        'pipeline:',
        '  stages:',
        '    - name: compat',
        '      kind: matrix',
        '      run: npm test',
        '      matrix:',
        '        axes: { node: [18, "20", 1.10], db: [pg, sqlite] }',
        '        exclude: [{ node: 1.10, db: sqlite }]',
        '        optional: [{ node: 18 }]',
      ),
    );
    assert.deepEqual(compat.matrix, {
      axes: [
        { name: 'node', values: ['18', '20', '1.10'] },
        { name: 'db', values: ['pg', 'sqlite'] },
      ],
      exclude: [{ node: '1.10', db: 'sqlite' }],
      optional: [{ node: '18' }],
      cells: [
        { values: { node: '18', db: 'pg' }, optional: true },
        { values: { node: '18', db: 'sqlite' }, optional: true },
        { values: { node: '20', db: 'pg' }, optional: false },
        { values: { node: '20', db: 'sqlite' }, optional: false },
        { values: { node: '1.10', db: 'pg' }, optional: false },
      ],
    });
  });

  it('load: defaults, and each threshold with its line', () => {
    const [, perf] = stages(
      yaml('pipeline:', '  stages:', '    - { name: build, run: make }', '    - name: perf', '      kind: load', '      environment: staging', '      load:', '        path: /', '        thresholds: { p95: < 200ms, errorRate: < 1% }', ...ENVS),
    );
    assert.deepEqual(perf.load, {
      path: '/',
      url: null,
      method: 'GET',
      headers: {},
      body: null,
      connections: 10,
      rate: null,
      durationMs: 10_000,
      thresholds: [
        { metric: 'p95', expr: '< 200ms', location: { file: FILE, line: 9, column: 28 } },
        { metric: 'errorRate', expr: '< 1%', location: { file: FILE, line: 9, column: 48 } },
      ],
    });
  });

  it('scan: defaults, and each source as the scan takes it', () => {
    const [plain, custom] = stages(
      yaml(
        'pipeline:',
        '  stages:',
        '    - { name: audit, kind: scan }',
        '    - name: audit-all',
        '      kind: scan',
        '      scan:',
        '        lockfiles: app/package-lock.json',
        '        sources: [{ osv: advisories }, { osv-api: true }, { osv-api: "http://127.0.0.1:8080" }, { npm-audit: "http://127.0.0.1:4873" }]',
        '        failOn: critical',
        '        unreachable: warn',
      ),
    );
    assert.deepEqual(plain.scan, { lockfiles: ['package-lock.json'], sources: [{ kind: 'npm-audit', registry: null }], failOn: 'high', unreachable: 'fail' });
    assert.deepEqual(custom.scan, {
      lockfiles: ['app/package-lock.json'],
      sources: [
        { kind: 'osv-folder', path: 'advisories' },
        { kind: 'osv-api', url: 'https://api.osv.dev' },
        { kind: 'osv-api', url: 'http://127.0.0.1:8080' },
        { kind: 'npm-audit', registry: 'http://127.0.0.1:4873' },
      ],
      failOn: 'critical',
      unreachable: 'warn',
    });
  });
});
