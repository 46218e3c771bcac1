import * as assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { DockerRuntime } from '../../../agent/runtimes/docker';
import { LABEL } from '../../../agent/runtimes/docker-common';
import { CONTAINER_ACTIONS, openEventStreams, SERVICE_ACTIONS, watchDockerEvents, type DockerEvent } from '../../../agent/runtimes/docker-events';
import type { RuntimeServices } from '../../../agent/runtimes/runtime';
import { SwarmRuntime } from '../../../agent/runtimes/swarm';
import type { IDisposable } from '../../../agent/util/lifecycle';
import { dockerClient, freePort, removeByLabel, requireDocker, TEST_LABEL, testRunLabel } from '../../support/docker';
import { sleep, until } from '../../support/fixtures';
import { startTestServices, type Cleanup } from '../../support/runtimes';

/** A client of its own (so its streams are the test's alone) that counts the event streams it asks the daemon for. */
function countingClient(): { docker: Docker; opened: () => number } {
  const docker = dockerClient();
  const getEvents = docker.getEvents.bind(docker) as (...args: unknown[]) => unknown;
  let opened = 0;
  (docker as { getEvents: unknown }).getEvents = (...args: unknown[]) => {
    opened++;
    return getEvents(...args);
  };
  return { docker, opened: () => opened };
}

describe('docker-events: the daemon event streams the runtimes share (real dockerd)', function () {
  const label = testRunLabel('docker-events');
  const scope = `events-${label}`;
  const cleanup: Cleanup = [];
  const watching: IDisposable[] = [];
  let services: RuntimeServices;

  before(async () => {
    await requireDocker();
    ({ services } = await startTestServices('conveyor-docker-events-', freePort, cleanup));
  });

  afterEach(() => {
    for (const w of watching.splice(0)) w.dispose();
  });

  after(async () => {
    await removeByLabel(dockerClient(), label);
    for (const fn of cleanup.reverse()) await fn();
  });

  /** A container of the environment, as the docker runtime labels it (in `scope`), started. */
  const runContainer = async (docker: Docker, environment: string, inScope = scope): Promise<Docker.Container> => {
    const c = await docker.createContainer({
      Image: 'conveyor-test/busybox:1',
      Cmd: ['sleep', '300'],
      Labels: { [LABEL.managed]: 'true', [LABEL.scope]: inScope, [LABEL.environment]: environment, [TEST_LABEL]: label },
      HostConfig: { Init: true },
    });
    await c.start();
    return c;
  };

  /** Watches of environments by one runtime; counts each one's calls of onChange. */
  const watchAll = (runtime: { watch(e: string, onChange: () => void): IDisposable }, environments: string[]): Record<string, number> => {
    const fired: Record<string, number> = Object.fromEntries(environments.map((e) => [e, 0]));
    for (const e of environments) watching.push(runtime.watch(e, () => fired[e]++));
    return fired;
  };

  it('docker runtime: the watches of many environments share one stream; each hears only of its own containers; the last dispose closes it', async () => {
    const { docker, opened } = countingClient();
    const runtime = new DockerRuntime(docker, services, { scope, debounceMs: 50 });
    const other = new DockerRuntime(docker, services, { scope: `${scope}-other`, debounceMs: 50 });
    cleanup.push(() => runtime.dispose(), () => other.dispose());
    const fired = watchAll(runtime, ['a', 'b', 'c']);
    // Another agent on the daemon with an environment of the same name.
    const otherFired = watchAll(other, ['b']);
    const [stream] = await until(() => (openEventStreams(docker).length ? openEventStreams(docker) : undefined), 'the stream open');
    assert.equal(opened(), 1, 'one stream of the daemon for 4 watches');
    assert.equal(openEventStreams(docker).length, 1);

    const b = await runContainer(docker, 'b');
    await until(() => fired.b > 0, 'b told of its container starting');
    assert.equal(fired.a, 0);
    const a = await runContainer(docker, 'a');
    await until(() => fired.a > 0, 'a told of its container starting');
    await sleep(300); // the debounced calls of the creates and starts are over
    fired.a = fired.b = 0;
    await b.stop({ t: 1 });
    await until(() => fired.b > 0, 'b told of its container stopping');
    await sleep(200); // a debounce and more: an event that concerned another watch would have reached it
    assert.deepEqual({ ...fired, other: otherFired.b }, { a: 0, b: fired.b, c: 0, other: 0 });
    await a.remove({ force: true });
    await until(() => fired.a > 0, 'a told of its container removed');
    assert.equal(opened(), 1);

    // Disposing all but one keeps the stream; disposing the last closes it.
    for (const w of watching.splice(1)) w.dispose();
    assert.equal(openEventStreams(docker).length, 1);
    assert.equal((stream as Readable).destroyed, false);
    watching.splice(0)[0].dispose();
    assert.deepEqual(openEventStreams(docker), []);
    assert.equal((stream as Readable).destroyed, true);
    // A new watch opens a new stream.
    watchAll(runtime, ['a']);
    await until(() => openEventStreams(docker).length === 1, 'a new stream open');
    assert.equal(opened(), 2);
  });

  it('a break of the stream: it reconnects once and calls every watch, which then hear of their containers again', async () => {
    const { docker, opened } = countingClient();
    const runtime = new DockerRuntime(docker, services, { scope, debounceMs: 50 });
    cleanup.push(() => runtime.dispose());
    const fired = watchAll(runtime, ['d', 'e', 'f']);
    const [broken] = await until(() => (openEventStreams(docker).length ? openEventStreams(docker) : undefined), 'the stream open');
    await sleep(200); // nothing fires before the break
    assert.deepEqual(fired, { d: 0, e: 0, f: 0 });
    // The daemon's stream breaks, as when the daemon restarts.
    (broken as Readable).destroy();
    await until(() => fired.d > 0 && fired.e > 0 && fired.f > 0, 'every watch called after reconnecting');
    assert.deepEqual(fired, { d: 1, e: 1, f: 1 });
    assert.equal(opened(), 2);
    const streams = openEventStreams(docker);
    assert.equal(streams.length, 1);
    assert.notEqual(streams[0], broken);
    await runContainer(docker, 'e');
    await until(() => fired.e > 1, 'e told of its container on the new stream');
    assert.equal(fired.d, 1);
  });

  it('swarm runtime: 80 environments share one stream, which the daemon spares the exec events of health checks', async function () {
    const { docker, opened } = countingClient();
    const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string } };
    if (info.Swarm?.LocalNodeState !== 'active') throw new Error('dockerd is not a swarm manager: run `bash test/provision.sh` (test/setup/45-swarm.sh) first');
    const runtime = new SwarmRuntime(docker, services, { debounceMs: 50 });
    cleanup.push(() => runtime.dispose());
    watchAll(
      runtime,
      Array.from({ length: 80 }, (_, i) => `env-${i}`),
    );
    // Every event the swarm watches' stream delivers, whoever it concerns: this watch shares that stream.
    const seen: DockerEvent[] = [];
    watching.push(
      watchDockerEvents(docker, { filters: { type: ['container', 'service'], event: [...CONTAINER_ACTIONS, ...SERVICE_ACTIONS] }, concerns: (e) => (seen.push(e), false), debounceMs: 50 }, () => undefined),
    );
    await until(() => openEventStreams(docker).length === 1, 'the stream open');
    assert.equal(opened(), 1, 'one stream of the daemon for 80 environments');

    const c = await runContainer(docker, 'g');
    const exec = await c.exec({ Cmd: ['true'] });
    await (await exec.start({})).resume();
    await until(async () => (await exec.inspect()).Running === false, 'the exec done');
    await c.stop({ t: 1 });
    const mine = () => seen.filter((e) => e.Actor?.Attributes?.[TEST_LABEL] === label && e.Actor?.Attributes?.[LABEL.environment] === 'g');
    // The daemon sends events in order: the stop comes after the exec's events.
    await until(() => mine().some((e) => e.Action === 'stop'), 'the stop seen');
    assert.deepEqual(
      mine()
        .map((e) => e.Action)
        .filter((a) => a !== 'kill'),
      ['create', 'start', 'die', 'stop'],
    );
    assert.deepEqual(seen.filter((e) => /^exec_/.test(e.Action ?? '')), []);
  });
});
