import * as assert from 'node:assert/strict';
import type { DesiredState } from '../../../agent/runtimes/runtime';
import { demuxLog, envOf, environmentFilter, hasLabels, healthCheckOf, LABEL, releaseLabels, resolveSettings, runningDigest, scopeOf, tailLog } from '../../../agent/runtimes/docker-common';
import { testRelease } from '../../support/runtimes';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** One frame of the daemon's multiplexed log: stream 1 (stdout) or 2 (stderr). */
function frame(stream: 1 | 2, text: string): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(Buffer.byteLength(text), 4);
  return Buffer.concat([header, Buffer.from(text)]);
}

describe('docker-common: what the docker and swarm runtimes share', () => {
  it('scopeOf: one short scope per state folder', () => {
    assert.match(scopeOf('/a/.conveyor'), /^[0-9a-f]{12}$/);
    assert.equal(scopeOf('/a/.conveyor'), scopeOf('/a/.conveyor'));
    assert.notEqual(scopeOf('/a/.conveyor'), scopeOf('/b/.conveyor'));
  });

  it('resolveSettings: per environment, and an undefined setting keeps its default', () => {
    const defaults = { stopTimeoutSec: 10, scope: 'agent' };
    assert.deepEqual(resolveSettings({ stopTimeoutSec: undefined }, 'web', defaults), { stopTimeoutSec: 10, scope: 'agent' });
    const perEnv = (env: string) => ({ stopTimeoutSec: env === 'web' ? 2 : undefined });
    assert.deepEqual(resolveSettings(perEnv, 'web', defaults), { stopTimeoutSec: 2, scope: 'agent' });
    assert.deepEqual(resolveSettings(perEnv, 'api', defaults), { stopTimeoutSec: 10, scope: 'agent' });
  });

  it('environmentFilter and releaseLabels: the record of a release, over the extra labels', () => {
    assert.deepEqual(environmentFilter('s1', 'web'), ['conveyor.managed=true', 'conveyor.scope=s1', 'conveyor.environment=web']);
    const attributes = { 'conveyor.managed': 'true', 'conveyor.scope': 's1', 'conveyor.environment': 'web', name: 'x' };
    assert.equal(hasLabels(attributes, environmentFilter('s1', 'web')), true);
    assert.equal(hasLabels(attributes, environmentFilter('s1', 'we')), false);
    assert.equal(hasLabels(attributes, environmentFilter('s2', 'web')), false);
    assert.equal(hasLabels(undefined, environmentFilter('s1', 'web')), false);
    assert.equal(hasLabels({ 'a=b': 'c', a: 'b=c' }, ['a=b=c']), true, 'the first = ends the key');
    const desired: DesiredState = {
      release: testRelease(3, { kind: 'image', repository: '127.0.0.1:5000/web', digest: DIGEST }),
      healthCheck: { kind: 'tcp', timeoutMs: 1000, intervalMs: 100 },
      publicPort: 8000,
      secrets: {},
    };
    const labels = releaseLabels(desired, { labels: { team: 'a', [LABEL.release]: 'forged' }, scope: 's1' });
    assert.deepEqual(labels, {
      team: 'a',
      [LABEL.managed]: 'true',
      [LABEL.scope]: 's1',
      [LABEL.environment]: 'web',
      [LABEL.release]: '3',
      [LABEL.digest]: DIGEST,
      [LABEL.repository]: '127.0.0.1:5000/web',
      [LABEL.health]: JSON.stringify(desired.healthCheck),
      [LABEL.containerPort]: '8080',
      [LABEL.publicPort]: '8000',
      [LABEL.run]: '3',
      [LABEL.commit]: 'c'.repeat(40),
    });
    const bare = releaseLabels({ ...desired, release: { ...desired.release, runId: null, commit: null } }, { labels: {}, scope: 's1' });
    assert.ok(!(LABEL.run in bare) && !(LABEL.commit in bare), JSON.stringify(bare));
  });

  it('envOf, runningDigest, healthCheckOf: reading a container back', () => {
    assert.deepEqual(
      envOf(['A=1', 'B=x=y', 'EMPTY', 'SECRET=s'], (k) => k !== 'SECRET'),
      { A: '1', B: 'x=y', EMPTY: '' },
    );
    assert.equal(runningDigest(`127.0.0.1:5000/web@${DIGEST}`, {}), DIGEST);
    assert.equal(runningDigest('127.0.0.1:5000/web:v1', { [LABEL.digest]: DIGEST }), '127.0.0.1:5000/web:v1', 'a tag changed by hand is what runs');
    assert.equal(runningDigest('', { [LABEL.digest]: DIGEST }), DIGEST);
    assert.deepEqual(healthCheckOf({ [LABEL.health]: '{"kind":"tcp","timeoutMs":1,"intervalMs":1}' }), { kind: 'tcp', timeoutMs: 1, intervalMs: 1 });
    assert.equal(healthCheckOf({ [LABEL.health]: '{not json' }), null);
    assert.equal(healthCheckOf(undefined), null);
  });

  it('demuxLog and tailLog: the text of a multiplexed log; nothing when it cannot be read', async () => {
    const framed = Buffer.concat([frame(1, 'booting\n'), frame(2, 'config: missing\n')]);
    assert.equal(demuxLog(framed), 'booting\nconfig: missing\n');
    assert.equal(demuxLog(Buffer.from('a plain tty log\n')), 'a plain tty log\n');
    const asked: object[] = [];
    assert.equal(await tailLog({ logs: async (o) => (asked.push(o), framed) }, 5), 'booting\nconfig: missing\n');
    assert.deepEqual(asked, [{ stdout: true, stderr: true, tail: 5, follow: false }]);
    assert.equal(await tailLog({ logs: () => Promise.reject(new Error('no such container')) }, 5), '');
  });
});
