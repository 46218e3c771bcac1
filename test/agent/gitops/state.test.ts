import * as assert from 'node:assert/strict';
import { analyzeConfigText } from '../../../agent/config';
import { pickTag, policyProblem } from '../../../agent/gitops/image-update';
import { parseState, renderState, sameContent, stateOfRelease } from '../../../agent/gitops/state';
import type { EnvironmentState, Release } from '../../../agent/protocol';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const RELEASE: Release = {
  environment: 'staging',
  number: 7,
  artifact: { kind: 'image', repository: '127.0.0.1:5000/hello', digest: DIGEST },
  command: [],
  env: { GREETING: 'hi', EMPTY: '' },
  containerPort: 8080,
  replicas: 2,
  runId: 12,
  commit: 'c'.repeat(40),
  createdAt: '2026-01-01T00:00:00.000Z',
  createdBy: 'alice (cli)',
};

describe('gitops: state files', () => {
  it('renders a release and reads it back to the same content, with the line of each key', () => {
    const text = renderState(stateOfRelease(RELEASE));
    const parsed = parseState(text, 'staging');
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error.message);
    assert.ok(sameContent(parsed.value.state, RELEASE));
    assert.deepEqual(parsed.value.state.source, { release: 7, run: 12, commit: 'c'.repeat(40) });
    const lines = text.split('\n');
    assert.match(lines[parsed.value.lines['env.GREETING'] - 1], /^\s+GREETING: hi$/);
    assert.match(lines[parsed.value.lines['replicas'] - 1], /^replicas: 2$/);
    assert.match(lines[parsed.value.lines['artifact.digest'] - 1], /digest: sha256:/);
    assert.match(text, /^# Desired state of the "staging" environment/);
  });

  it('content is what runs: the source and the tag are records, not state', () => {
    const s: EnvironmentState = { ...stateOfRelease(RELEASE, '1.2.0'), source: { release: null, run: null, commit: null } };
    assert.ok(sameContent(s, RELEASE));
    assert.ok(!sameContent({ ...s, replicas: 3 }, RELEASE));
    assert.ok(!sameContent({ ...s, env: { GREETING: 'hi' } }, RELEASE));
  });

  const bad: [string, (t: string) => string, RegExp, string][] = [
    ['a YAML syntax error', (t) => t.replace('replicas: 2', 'replicas: 2: 3'), /^not valid YAML: Nested mappings are not allowed/, 'replicas'],
    ['replicas that is not a number', (t) => t.replace('replicas: 2', 'replicas: two'), /"replicas" must be a whole number from 1 to 50, not "two"/, 'replicas'],
    ['a short digest', (t) => t.replace(DIGEST, 'sha256:abc'), /artifact\.digest must be sha256: followed by 64 hex digits/, 'digest'],
    ['another environment', (t) => t.replace('environment: staging', 'environment: production'), /this file describes "staging" \(its name\) but says environment: production/, 'environment:'],
    ['an unknown key', (t) => `${t}replicaz: 3\n`, /unknown key "replicaz"/, 'replicaz'],
    ['a bad variable name', (t) => t.replace('GREETING: hi', '9LIVES: hi'), /"9LIVES" is not a variable name/, '9LIVES'],
  ];
  for (const [what, mutate, message, marker] of bad) {
    it(`says where the problem is: ${what}`, () => {
      const text = mutate(renderState(stateOfRelease(RELEASE)));
      const parsed = parseState(text, 'staging');
      assert.ok(!parsed.ok);
      assert.match(parsed.error.message, message);
      const line = text.split('\n').findIndex((l) => l.includes(marker)) + 1;
      assert.equal(parsed.error.line, line, `${parsed.error.message} at ${parsed.error.line}, expected ${line}`);
    });
  }

  it('picks the newest tag a policy allows', () => {
    const tags = ['0.9.0', '1.0.0', '1.10.0', '1.9.3', '2.0.0', 'v1.11.0-rc.1', 'latest', 'main-9', 'main-10', 'main-x'];
    assert.equal(pickTag(tags, { semver: '^1.0.0', pattern: null }), '1.10.0');
    assert.equal(pickTag(tags, { semver: '>=2', pattern: null }), '2.0.0');
    assert.equal(pickTag(tags, { semver: '^3', pattern: null }), null);
    assert.equal(pickTag(tags, { semver: null, pattern: '^main-[0-9]+$' }), 'main-10');
    assert.equal(policyProblem({ semver: null, pattern: null })?.startsWith('imageUpdate needs'), true);
    assert.match(policyProblem({ semver: 'not a range', pattern: null })!, /is not a semver range/);
    assert.match(policyProblem({ semver: null, pattern: '([' })!, /is not a regular expression/);
  });

  it('a policy that cannot work is a config error at its line', () => {
    const text = [
      'pipeline:',
      '  stages:',
      '    - name: a',
      '      run: "true"',
      'environments:',
      '  staging:',
      '    runtime: docker',
      '    imageUpdate: { repository: 127.0.0.1:5000/hello, semver: "one point oh" }',
      '  production:',
      '    imageUpdate:',
      '      repository: 127.0.0.1:5000/hello',
      '',
    ].join('\n');
    const ds = analyzeConfigText(text, '/w/conveyor.yml').diagnostics.map((d) => `${d.range.start.line}: ${d.message}`);
    assert.deepEqual(ds, [
      '8: "one point oh" is not a semver range; write one such as ^1.0.0 or ">=1.2 <2"',
      '10: imageUpdate needs "semver" (a version range such as ^1.0.0) or "pattern" (a regular expression)',
    ]);
  });
});
