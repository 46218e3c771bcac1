import * as assert from 'node:assert/strict';
import { DisposableSet } from '../../../agent/util/disposable-set';
import { InFlight } from '../../../agent/util/in-flight';
import { setUnexpectedErrorHandler, toDisposable } from '../../../agent/util/lifecycle';
import { Backoff, Debouncer, sleep } from '../../../agent/util/timers';
import { until } from '../../support/fixtures';

describe('timers: sleep, Debouncer, Backoff', () => {
  it('sleep ends at once when its signal aborts, during the wait or before it', async () => {
    const ac = new AbortController();
    const waiting = sleep(10 * 60_000, ac.signal);
    ac.abort();
    await waiting; // a sleep that ignored the abort would time the test out
    await sleep(10 * 60_000, AbortSignal.abort());
    await sleep(1);
  });

  it('Debouncer runs once for a burst, with the delay set last, and reports a throwing function', async () => {
    let calls = 0;
    const d = new Debouncer(() => calls++, 60_000);
    d.delayMs = 1;
    for (let i = 0; i < 5; i++) d.trigger();
    await until(() => calls > 0, 'the debounced call');
    await sleep(20);
    assert.equal(calls, 1);

    const reported: unknown[] = [];
    setUnexpectedErrorHandler((e) => reported.push(e));
    try {
      const throwing = new Debouncer(() => {
        throw new Error('listener bug');
      }, 1);
      throwing.trigger();
      await until(() => reported.length > 0, 'the report');
      assert.match(String(reported[0]), /listener bug/);
    } finally {
      setUnexpectedErrorHandler((e) => console.error('[conveyor] unexpected error:', e));
    }
  });

  it('Debouncer runs nothing after dispose()', async () => {
    let calls = 0;
    const d = new Debouncer(() => calls++, 1);
    d.trigger();
    d.dispose();
    d.trigger();
    await sleep(20);
    assert.equal(calls, 0);
  });

  it('Backoff keeps one retry pending at a time, and none after dispose()', async () => {
    let attempts = 0;
    const b = new Backoff(() => attempts++, 1, 4);
    b.schedule();
    b.schedule();
    await until(() => attempts > 0, 'the first retry');
    await sleep(20);
    assert.equal(attempts, 1, 'the second schedule() found the first pending');
    b.reset();
    b.schedule();
    await until(() => attempts > 1, 'the next retry');
    b.schedule();
    b.dispose();
    await sleep(20);
    assert.equal(attempts, 2);
  });
});

describe('InFlight', () => {
  it('counts each key until every operation on it has ended', () => {
    const inFlight = new InFlight();
    const a = inFlight.begin('staging');
    const b = inFlight.begin('staging');
    assert.equal(inFlight.has('staging'), true);
    assert.equal(inFlight.has('production'), false);
    a();
    assert.equal(inFlight.has('staging'), true, 'one apply still runs');
    b();
    assert.equal(inFlight.has('staging'), false);
  });
});

describe('DisposableSet', () => {
  it('disposes what is still open, each once', () => {
    const disposed: string[] = [];
    const set = new DisposableSet();
    const a = set.add(toDisposable(() => disposed.push('a')));
    set.add(toDisposable(() => disposed.push('b')));
    a.dispose();
    a.dispose();
    set.dispose();
    set.dispose();
    assert.deepEqual(disposed, ['a', 'b']);
  });
});
