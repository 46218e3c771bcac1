import * as assert from 'node:assert/strict';
import type { Diagnostic } from '../../../agent/protocol';
import { analyzeConfigText, formatDiagnosticLine, formatDiagnosticPretty } from '../../../agent/config';

const FILE = 'conveyor.yml';

function yaml(...rows: string[]): string {
  return rows.join('\n') + '\n';
}

function lines(text: string): string[] {
  return analyzeConfigText(text, FILE).diagnostics.map(formatDiagnosticLine);
}

const ANSI = /\u001b\[[0-9;]*m/g;

describe('formatDiagnosticLine', () => {
  const base: Diagnostic = {
    severity: 'warning',
    code: 'duplicate-name',
    message: 'secret "A" is listed twice',
    file: 'dir/conveyor.yml',
    range: { start: { line: 3, column: 14 }, end: { line: 3, column: 15 } },
  };

  it('prints file:line:column: severity: message', () => {
    assert.equal(formatDiagnosticLine(base), 'dir/conveyor.yml:3:14: warning: secret "A" is listed twice');
  });

  it('appends the fix when there is one', () => {
    assert.equal(
      formatDiagnosticLine({ ...base, fix: 'remove the second "A"' }),
      'dir/conveyor.yml:3:14: warning: secret "A" is listed twice (fix: remove the second "A")',
    );
  });
});

describe('formatDiagnosticPretty', () => {
  const text = yaml('pipeline:', '  stages:', '    - name: test', '      run: npm test', '      neds: [build]');

  it('shows the source line and a squiggle under the exact columns', () => {
    const [d] = analyzeConfigText(text, FILE).diagnostics;
    assert.equal(
      formatDiagnosticPretty(d, text),
      [
        'conveyor.yml:5:7: error: unknown key "neds" in stage "test" (fix: did you mean "needs"?)',
        '5 |       neds: [build]',
        '  |       ^~~~',
      ].join('\n'),
    );
  });

  it('colours only when asked, with the same text underneath', () => {
    const [d] = analyzeConfigText(text, FILE).diagnostics;
    const plain = formatDiagnosticPretty(d, text);
    const coloured = formatDiagnosticPretty(d, text, { color: true });
    assert.ok(!ANSI.test(plain));
    assert.ok(/\u001b\[31m/.test(coloured), 'errors are red');
    assert.equal(coloured.replace(ANSI, ''), plain);
  });

  it('shows related locations the same way, with a common gutter', () => {
    const cycle = yaml(
      'pipeline:',
      '  stages:',
      '    - name: a',
      '      run: x',
      '      needs: b',
      '    - name: b',
      '      run: x',
      '',
      '',
      '      needs: [a]',
    );
    const [d] = analyzeConfigText(cycle, FILE).diagnostics;
    assert.equal(
      formatDiagnosticPretty(d, cycle),
      [
        'conveyor.yml:5:14: error: cycle: a → b → a (fix: remove "a" from the needs of "b", or another need of the cycle)',
        ' 5 |       needs: b',
        '   |              ^',
        'conveyor.yml:5:14: note: "a" needs "b"',
        ' 5 |       needs: b',
        '   |              ^',
        'conveyor.yml:10:15: note: "b" needs "a"',
        '10 |       needs: [a]',
        '   |               ^',
      ].join('\n'),
    );
  });

  it('keeps tabs in the padding so the squiggle lines up', () => {
    const d: Diagnostic = {
      severity: 'error',
      code: 'yaml-syntax',
      message: 'm',
      file: FILE,
      range: { start: { line: 1, column: 3 }, end: { line: 1, column: 6 } },
    };
    assert.equal(formatDiagnosticPretty(d, '\t key: v\n').split('\n')[2], '  | \t ^~~');
  });

  it('underlines to the end of the line when a range spans lines, and one caret when it is empty', () => {
    const d: Diagnostic = {
      severity: 'error',
      code: 'wrong-type',
      message: 'm',
      file: FILE,
      range: { start: { line: 1, column: 4 }, end: { line: 3, column: 2 } },
    };
    assert.equal(formatDiagnosticPretty(d, 'abcdef\nx\ny\n').split('\n')[2], '  |    ^~~');
    const empty = { ...d, range: { start: { line: 2, column: 1 }, end: { line: 2, column: 1 } } };
    assert.equal(formatDiagnosticPretty(empty, 'abc\n\n').split('\n').slice(1).join('\n'), '2 | \n  | ^');
  });

  it('prints the line alone when the text has no such line', () => {
    const d: Diagnostic = {
      severity: 'error',
      code: 'missing-file',
      message: 'no conveyor.yml',
      file: FILE,
      range: { start: { line: 1, column: 1 }, end: { line: 1, column: 1 } },
      fix: 'create it',
    };
    assert.equal(formatDiagnosticPretty(d, ''), 'conveyor.yml:1:1: error: no conveyor.yml (fix: create it)');
  });
});

describe('config analyzer: one diagnostic per problem', () => {
  it('an empty run list is one diagnostic, not one per alternative', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: a', '      run: []')), [
      'conveyor.yml:4:12: error: "run" must not be an empty list (fix: write a string or a non-empty list of strings, e.g. "run: npm test")',
    ]);
  });

  it('a run with no value at all', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: a', '      run:')), [
      'conveyor.yml:4:7: error: "run" must be a string or a non-empty list of strings, not an empty value (fix: write a string or a non-empty list of strings, e.g. "run: npm test")',
    ]);
  });

  it('a number among the steps: at the entry, suggesting quotes', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: a', '      run: [npm test, 42]')), [
      'conveyor.yml:4:23: error: "run" entry 2 must be a string, not 42 (fix: quote it: "42")',
    ]);
  });

  it('a misspelt trigger in a list: the entry, with did-you-mean', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: a', '      run: x', '      when: [comit, save]')), [
      'conveyor.yml:5:14: error: "when" entry 1 must be one of "save", "commit" or "manual", not "comit" (fix: did you mean "commit"?)',
    ]);
  });

  it('a trigger of the wrong type: one wrong-type for the whole value', () => {
    const state = analyzeConfigText(yaml('pipeline:', '  stages:', '    - name: a', '      run: x', '      when: {save: true}'), FILE);
    assert.deepEqual(
      state.diagnostics.map((d) => [d.code, formatDiagnosticLine(d)]),
      [
        [
          'wrong-type',
          'conveyor.yml:5:13: error: "when" must be save, commit or manual, or a list of them, not a mapping (fix: write save, commit or manual, or a list of them, e.g. "when: [commit, manual]")',
        ],
      ],
    );
  });

  it('a negative timeout', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: a', '      run: x', '      timeout: -5')), [
      'conveyor.yml:5:16: error: "timeout" must be a number of seconds or a duration such as 90s, 10m, 1h30m or 500ms, not -5 (fix: write a number of seconds or a duration such as 90s, 10m, 1h30m or 500ms, e.g. "timeout: 10m")',
    ]);
  });

  it('a quoted number where a number is expected: a type error, not also an enum error', () => {
    assert.deepEqual(lines(yaml('version: "1"', 'pipeline: {stages: [{name: a, run: x}]}')), [
      'conveyor.yml:1:10: error: "version" must be 1, not "1" (fix: remove the quotes: "version: 1")',
    ]);
  });

  it('a misspelt required key is one unknown key, not also a missing one', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - naem: a', '      run: x')), [
      'conveyor.yml:3:7: error: unknown key "naem" in stage #1 (fix: did you mean "name"?)',
    ]);
  });

  it('out of range', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  maxParallel: 0', '  stages: [{name: a, run: x, retries: 11}]')), [
      'conveyor.yml:2:16: error: "maxParallel" must be an integer from 1 to 64, not 0 (fix: write an integer from 1 to 64, e.g. "maxParallel: 4")',
      'conveyor.yml:3:39: error: "retries" must be an integer from 0 to 10, not 11 (fix: write an integer from 0 to 10, e.g. "retries: 1")',
    ]);
  });
});

describe('config analyzer: names and keys', () => {
  it('a stage name with a space', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: my stage', '      run: x')), [
      'conveyor.yml:3:13: error: "name" must start with a letter or digit and use only letters, digits, "_", "." and "-", not "my stage" (fix: did you mean "my-stage"?)',
    ]);
  });

  it('a number as a stage name is read as text only when quoted', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: 2024', '      run: x')), [
      'conveyor.yml:3:13: error: "name" must be a name of letters, digits, "_", "." and "-", starting with a letter or digit, not 2024 (fix: quote it: "2024")',
    ]);
  });

  it('an environment name, at the key', () => {
    assert.deepEqual(lines(yaml('pipeline: {stages: [{name: a, run: x}]}', 'environments:', '  my env: {}')), [
      'conveyor.yml:3:3: error: environment name "my env" must start with a letter or digit and use only letters, digits, "_", "." and "-" (fix: did you mean "my-env"?)',
    ]);
  });

  it('an environment variable name, at the key', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: a', '      run: x', '      env: { MY-VAR: 1 }')), [
      'conveyor.yml:5:14: error: variable name "MY-VAR" must use only letters, digits and "_", and not start with a digit (fix: did you mean "MY_VAR"?)',
    ]);
  });

  it('an environment setting that does not exist', () => {
    assert.deepEqual(lines(yaml('pipeline: {stages: [{name: a, run: x}]}', 'environments:', '  staging: { runtime: dokcer, replica: 2 }')), [
      'conveyor.yml:3:23: error: "runtime" must be one of "process", "docker", "swarm" or "kubernetes", not "dokcer" (fix: did you mean "docker"?)',
      'conveyor.yml:3:31: error: unknown key "replica" in environment "staging" (fix: did you mean "replicas"?)',
    ]);
  });

  it('a key of another mapping: says where it goes', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - name: a', '      run: x', '      maxParallel: 2')), [
      'conveyor.yml:5:7: error: unknown key "maxParallel" in stage "a" (fix: move "maxParallel" under "pipeline:")',
    ]);
  });

  it('a top-level key holding an anchor: suggests the x- prefix', () => {
    assert.deepEqual(lines(yaml('defaults: &d {retries: 1}', 'pipeline: {stages: [{name: a, run: x, <<: *d}]}')), [
      'conveyor.yml:1:1: error: unknown key "defaults" at the top level (fix: rename it "x-defaults": top-level keys starting with "x-" are ignored and may hold anchors)',
    ]);
  });

  it('stages written as a mapping', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    build:', '      run: make')), [
      'conveyor.yml:3:5: error: "stages" must be a non-empty list of stages, not a mapping (fix: write each entry as a list item starting with "- name: build", its other keys indented below it)',
    ]);
  });

  it('a single branch where a list is expected', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  branches: main', '  stages: [{name: a, run: x}]')), [
      'conveyor.yml:2:13: error: "branches" must be a list of strings, not "main" (fix: write a list: "branches: [main]")',
    ]);
  });
});

describe('config analyzer: semantic checks', () => {
  it('needs written as one comma-separated string', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  stages:', '    - {name: a, run: x}', '    - {name: b, run: x}', '    - {name: c, run: x, needs: "a, b"}')), [
      'conveyor.yml:5:32: error: stage "c" needs "a, b", but no stage has that name (fix: write a list: "needs: [a, b]")',
    ]);
  });

  it('watch.stages must name stages', () => {
    const state = analyzeConfigText(yaml('pipeline: {stages: [{name: test, run: x}]}', 'watch: {stages: [tset]}'), FILE);
    assert.deepEqual(
      state.diagnostics.map((d) => [d.code, formatDiagnosticLine(d)]),
      [['unknown-need', 'conveyor.yml:2:18: error: "watch.stages" names "tset", but no stage has that name (fix: did you mean "test"?)']],
    );
  });

  it('workdir: no absolute paths, no way out with ..', () => {
    assert.deepEqual(
      lines(yaml('pipeline:', '  stages:', '    - {name: a, run: x, workdir: ../elsewhere}', '    - {name: b, run: x, workdir: /srv/app}', '    - {name: c, run: x, workdir: a/../../b}', '    - {name: d, run: x, workdir: a/../b}')),
      [
        'conveyor.yml:3:34: error: "workdir" must stay inside the folder holding conveyor.yml, not "../elsewhere" (fix: write a path below that folder, e.g. "workdir: packages/api")',
        'conveyor.yml:4:34: error: "workdir" must be a path relative to the folder holding conveyor.yml, not "/srv/app" (fix: write a path relative to the folder holding conveyor.yml, e.g. "workdir: packages/api")',
        'conveyor.yml:5:34: error: "workdir" must stay inside the folder holding conveyor.yml, not "a/../../b" (fix: write a path below that folder, e.g. "workdir: packages/api")',
      ],
    );
  });

  it('warnings alone keep a config valid, and their duplicates are dropped', () => {
    const state = analyzeConfigText(
      yaml('pipeline:', '  stages:', '    - {name: a, run: x}', '    - {name: b, run: x, needs: [a, a]}', 'secrets: [TOKEN, TOKEN]'),
      FILE,
    );
    assert.ok(state.valid);
    assert.deepEqual(state.diagnostics.map(formatDiagnosticLine), [
      'conveyor.yml:4:36: warning: stage "b" needs "a" twice (fix: remove the second "a")',
      'conveyor.yml:5:18: warning: secret "TOKEN" is listed twice (fix: remove the second "TOKEN")',
    ]);
    assert.deepEqual(state.config.pipeline.stages[1].needs, ['a']);
    assert.deepEqual(state.config.secrets, ['TOKEN']);
  });

  it('an error in an anchored value points at the anchored value', () => {
    assert.deepEqual(
      lines(yaml('x-common: &common', '  retries: lots', 'pipeline:', '  stages:', '    - name: a', '      <<: *common', '      run: x')),
      ['conveyor.yml:2:12: error: "retries" must be an integer from 0 to 10, not "lots" (fix: write an integer from 0 to 10, e.g. "retries: 1")'],
    );
  });

  it('an alias inside its own anchor is reported, not followed', () => {
    assert.deepEqual(lines(yaml('pipeline: &p', '  stages: [*p]')), [
      'conveyor.yml:2:12: error: alias "*p" is inside the value its anchor names, so that value would never end (fix: use "*p" outside the value of "&p", or write the value out)',
    ]);
  });

  it('a merge key of a scalar', () => {
    assert.deepEqual(lines(yaml('pipeline:', '  <<: 5', '  stages: [{name: a, run: x}]')), [
      'conveyor.yml:2:7: error: "<<" merges mappings only: its value must be an alias of a mapping, or a list of them (fix: write "<<: *name" where "&name" marks a mapping, e.g. "x-defaults: &defaults {retries: 1}")',
    ]);
  });

  it('sorts by position, whatever found them', () => {
    const state = analyzeConfigText(
      yaml('pipeline:', '  stages:', '    - name: b', '      run: x', '      needs: [zz]', '      retries: 99', '    - name: b', '      run: y', 'secrets: [1x]'),
      FILE,
    );
    const positions = state.diagnostics.map((d) => [d.range.start.line, d.range.start.column]);
    assert.deepEqual(positions, [
      [5, 15],
      [6, 16],
      [7, 13],
      [9, 11],
    ]);
    assert.deepEqual(
      state.diagnostics.map((d) => d.code),
      ['unknown-need', 'invalid-value', 'duplicate-name', 'invalid-value'],
    );
  });
});
