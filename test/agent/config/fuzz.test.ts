import * as assert from 'node:assert/strict';
import type { ConfigState, Diagnostic, DiagnosticCode } from '../../../agent/protocol';
import { analyzeConfigText, formatDiagnosticLine, formatDiagnosticPretty } from '../../../agent/config';

/** mulberry32: a small deterministic PRNG, so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASES = [
  `version: 1
pipeline:
  name: hello-service
  branches: [main]
  maxParallel: 4
  onNewRun: queue
  stages:
    - name: build
      run: npm run build
      artifacts: [dist/app.tgz]
    - name: test
      kind: command
      run:
        - npm test
        - npm run lint
      needs: [build]
      env: { CI: "1", DEBUG: false, LEVEL: 3 }
      timeout: 10m
      retries: 1
      when: [commit, manual]
      report: { format: junit, path: reports/junit.xml }
environments:
  staging: { runtime: process, promotion: auto }
  production: { runtime: docker }
watch: { include: ["src/**"], exclude: ["**/*.md"], stages: [test] }
secrets: [NPM_TOKEN]
`,
  `x-defaults: &defaults
  retries: 2
  timeout: 90s
  env:
    NODE_ENV: test
pipeline:
  stages:
    - name: lint
      <<: *defaults
      run: npm run lint
    - name: unit
      <<: *defaults
      run: npm test
      needs: lint
    - name: e2e
      run: [npm run e2e]
      needs: [lint, unit]
      when: manual
`,
  `pipeline: {name: p, stages: [{name: a, run: echo a}, {name: b, run: [echo b], needs: a, timeout: 45}]}
watch:
  stages: [b]
`,
  `# a commented config
pipeline:
  onNewRun: supersede
  stages:
    - name: compile   # first
      run: |
        make all
        make check
      workdir: native
      timeout: 1h30m
    - name: package
      run: >
        tar czf out.tgz build
      needs:
        - compile
      artifacts: out.tgz
environments:
  dev:
  prod: { promotion: manual, runtime: kubernetes }
secrets:
  - TOKEN
  - OTHER_TOKEN
`,
];

const TOKENS = [':', '-', '- ', '[', ']', '{', '}', '&a', '*a', '&a ', ' *a', '\t', '"', "'", '#', '---', '<<: *a', '? ', '|', '>', '!!str ', '!foo ', ',', '%', '@', '`', '\n', ' ', '  ', '~', '&a [*a]', '\\', '…', '\r\n'];
const SCALARS = ['', '~', 'null', '123', '-1', '1.5', 'true', '[]', '{}', '[a, b]', '{a: 1}', '"x"', '.inf', '.nan', '0x10', '10m', '1h30m', '500ms', 'comand', 'build', 'test', '*a', '&a x', '"unclosed', "'", '- x', '99', 'a b'];
const CODES: DiagnosticCode[] = [
  'missing-file',
  'unreadable-file',
  'yaml-syntax',
  'unknown-key',
  'wrong-type',
  'missing-key',
  'invalid-value',
  'unknown-need',
  'cycle',
  'duplicate-name',
];

function mutate(text: string, rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const lines = text.split('\n');
  const li = Math.floor(rnd() * lines.length);
  switch (Math.floor(rnd() * 9)) {
    case 0:
      lines.splice(li, 1);
      return lines.join('\n');
    case 1:
      lines.splice(li, 0, lines[li]);
      return lines.join('\n');
    case 2: {
      const lj = Math.floor(rnd() * lines.length);
      [lines[li], lines[lj]] = [lines[lj], lines[li]];
      return lines.join('\n');
    }
    case 3: {
      const delta = Math.floor(rnd() * 9) - 4;
      lines[li] = delta >= 0 ? ' '.repeat(delta) + lines[li] : lines[li].replace(new RegExp(`^ {0,${-delta}}`), '');
      return lines.join('\n');
    }
    case 4: {
      const pos = Math.floor(rnd() * (text.length + 1));
      return text.slice(0, pos) + String.fromCharCode(32 + Math.floor(rnd() * 95)) + text.slice(pos);
    }
    case 5: {
      const pos = Math.floor(rnd() * (text.length + 1));
      return text.slice(0, pos) + pick(TOKENS) + text.slice(pos);
    }
    case 6: {
      // Replace a value after "key: " (or a list item) with a value of another type.
      const m = /^(\s*(?:- )?[^:#]*:\s|\s*-\s)(.*)$/.exec(lines[li]);
      if (m) lines[li] = m[1] + pick(SCALARS);
      return lines.join('\n');
    }
    case 7: {
      const pos = Math.floor(rnd() * text.length);
      return text.slice(0, pos) + text.slice(pos + 1 + Math.floor(rnd() * 6));
    }
    default: {
      const m = /^(\s*(?:- )?)([A-Za-z]+)(:.*)$/.exec(lines[li]);
      if (m) lines[li] = m[1] + pick(['neds', 'Name', 'stage', 'runn', 'x', 'timeout', 'needs', 'env', 'pipeline', 'stages']) + m[3];
      return lines.join('\n');
    }
  }
}

function checkRange(text: string, r: Diagnostic['range'], what: string): void {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  for (const p of [r.start, r.end]) {
    assert.ok(Number.isInteger(p.line) && p.line >= 1 && p.line <= lines.length, `${what}: line ${p.line} of ${lines.length}`);
    assert.ok(
      Number.isInteger(p.column) && p.column >= 1 && p.column <= lines[p.line - 1].length + 1,
      `${what}: column ${p.column} on a line of ${lines[p.line - 1].length}`,
    );
  }
  assert.ok(
    r.end.line > r.start.line || (r.end.line === r.start.line && r.end.column >= r.start.column),
    `${what}: range ends before it starts`,
  );
}

function checkState(text: string, state: ConfigState): void {
  assert.equal(state.file, 'conveyor.yml');
  const errors = state.diagnostics.filter((d) => d.severity === 'error');
  if (state.valid) {
    assert.equal(errors.length, 0, 'a valid config has no errors');
    assert.ok(state.config.pipeline.stages.length > 0);
    for (const st of state.config.pipeline.stages) {
      assert.ok(st.run.length > 0 && st.run.every((s) => typeof s === 'string'));
      assert.ok(Number.isFinite(st.timeoutMs) && st.timeoutMs >= 0);
      assert.ok(Object.values(st.env).every((v) => typeof v === 'string'));
    }
  } else {
    assert.ok(errors.length >= 1, 'an invalid config has at least one error');
  }
  for (const d of state.diagnostics) {
    const what = formatDiagnosticLine(d);
    assert.ok(CODES.includes(d.code), what);
    assert.ok(d.message.length > 0, what);
    assert.ok(typeof d.fix === 'string' && d.fix.length > 0, `${what}: no fix`);
    assert.ok(!/could not be analyzed/.test(d.message), `internal failure: ${what}`);
    assert.ok(!/must NOT|must match a schema|must be equal to/.test(d.message), `raw validator wording: ${what}`);
    checkRange(text, d.range, what);
    for (const r of d.related ?? []) checkRange(text, r.range, `${what} (related)`);
    formatDiagnosticPretty(d, text, { color: true });
  }
}

describe('config analyzer fuzz', function () {
  // A bound, not a measurement: the whole suite takes a few seconds.
  this.timeout(60_000);

  it('survives 2,000 seeded mutations of valid configs', () => {
    const rnd = prng(0xc0ffee);
    let text = BASES[0];
    let invalid = 0;
    for (let i = 0; i < 2000; i++) {
      if (i % 500 === 0 || rnd() < 0.4) text = BASES[Math.floor(rnd() * BASES.length)];
      const steps = 1 + Math.floor(rnd() * 3);
      for (let s = 0; s < steps; s++) text = mutate(text, rnd);
      let state: ConfigState;
      try {
        state = analyzeConfigText(text, 'conveyor.yml');
      } catch (err) {
        assert.fail(`case ${i} threw ${String(err)} for:\n${text}`);
      }
      try {
        checkState(text, state);
      } catch (err) {
        assert.fail(`case ${i}: ${(err as Error).message}\n--- text ---\n${text}`);
      }
      if (!state.valid) invalid++;
    }
    // The mutations must actually break configs, or the test proves nothing.
    assert.ok(invalid > 500, `only ${invalid} of 2000 mutated configs were invalid`);
  });

  it('accepts every base config unchanged', () => {
    for (const base of BASES) {
      const state = analyzeConfigText(base, 'conveyor.yml');
      assert.deepEqual(state.diagnostics.map(formatDiagnosticLine), []);
      assert.equal(state.valid, true);
    }
  });

  it('never throws on hostile inputs', () => {
    const hostile = [
      '',
      '\n\n\n',
      '\t',
      '---',
      '---\n---\n',
      '...',
      '%YAML 1.2\n---\npipeline: {}',
      '&a [*a]',
      'a: &a [*a]\npipeline: *a',
      'pipeline: &p {stages: [{name: a, run: x, needs: *p}]}',
      `a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`,
      '<<: 5\npipeline: {stages: [{name: a, run: x}]}',
      'pipeline:\n  <<: [*nope]\n',
      '? [a, b]\n: c\n',
      '? {a: 1}\n: b\npipeline: {stages: [{name: a, run: x}]}',
      '!!binary aGVsbG8=',
      'pipeline: !!set {a, b}',
      'pipeline: {stages: [{name: a, run: !!binary aGVsbG8=}]}',
      'pipeline: {stages: [{name: a, run: x, timeout: !!timestamp 2001-12-14}]}',
      '__proto__: {x: 1}\nconstructor: 1\npipeline: {stages: [{name: __proto__, run: x, env: {__proto__: 1}}]}',
      'pipeline:\r\n  stages:\r\n    - name: a\r\n      run: x\r\n      neds: b\r\n',
      '\ufeffpipeline: {stages: [{name: a, run: x}]}',
      'pipeline: {stages: [{name: "\u{1F600}", run: x}]}',
      '"\\',
      "'",
      '[',
      '{',
      '- - - - - -',
      ':'.repeat(1000),
      '['.repeat(2000),
      'a:\n' + '  '.repeat(500) + 'b: 1',
    ];
    for (const text of hostile) {
      const state = analyzeConfigText(text, 'conveyor.yml');
      checkState(text, state);
    }
    // Not even a string: the function is called from JavaScript too.
    const state = analyzeConfigText(undefined as unknown as string, 'conveyor.yml');
    assert.equal(state.valid, false);
  });
});
