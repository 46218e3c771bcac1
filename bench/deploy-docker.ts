import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { HealthCheck, Release } from '../agent/protocol';
import { DockerRuntime } from '../agent/runtimes/docker';
import { waitHealthy } from '../agent/runtimes/health';
import type { ApplyContext, DesiredState } from '../agent/runtimes/runtime';
import { buildImage, type BuiltImage } from '../agent/steps/image-build';
import {
  copyFixture,
  dockerCli,
  dockerClient,
  freePort,
  RequestLoop,
  removeByLabel,
  requireDocker,
  TcpSwitch,
  TEST_LABEL,
  testRunLabel,
  uniqueRepository,
} from '../test/support/docker';
import { imageRelease, median, type BenchResult } from './util';

const ROUNDS = 5;
const SWITCHES = 5;
/** The same wait for both sides: poll GET /healthz every 50 ms until it answers 200. */
const CHECK: HealthCheck = { kind: 'http', path: '/healthz', timeoutMs: 30_000, intervalMs: 50 };

/**
 * The docker runtime against the docker CLI, same image, same machine, same run:
 *  1. Deploy time of a small HTTP image (busybox httpd) through DockerRuntime.apply (recreate,
 *     nothing running before) against `docker run -d` of the same image by digest followed by the
 *     same health wait. Median of 5 each, interleaved.
 *  2. Blue-green switches under a steady request loop on the public port: requests that failed.
 */
export async function benchDeployDocker(): Promise<BenchResult> {
  const docker = dockerClient();
  await requireDocker(docker);
  const label = testRunLabel('bench-docker');
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bench-docker-'));
  const sw = new TcpSwitch(await freePort());
  await sw.start();
  const runtime = new DockerRuntime(
    docker,
    { allocatePort: freePort, route: sw.route, artifactsDir: path.join(stateDir, 'artifacts'), stateDir },
    { labels: { [TEST_LABEL]: label }, stopTimeoutSec: 2, drainMs: 500 },
  );
  const ctx: ApplyContext = { progress: () => undefined, signal: new AbortController().signal };
  try {
    const repository = uniqueRepository('bench');
    const images: BuiltImage[] = [];
    for (const v of ['1', '2']) {
      const dir = copyFixture('httpd');
      const r = await buildImage({ docker, contextDir: dir, repository, tag: `v${v}`, buildArgs: { VERSION: v }, labels: { [TEST_LABEL]: label } });
      fs.rmSync(dir, { recursive: true, force: true });
      if (!r.ok) throw new Error(`${r.error.reason}\n${r.error.log}`);
      images.push(r.value);
    }
    const release = imageRelease;
    const desired = (r: Release): DesiredState => ({ release: r, healthCheck: CHECK, publicPort: sw.publicPort, secrets: {} });
    const ref = `${images[0].repository}@${images[0].digest}`;

    // 1. Deploy time, fresh each round (the image is local for both: pulled once here).
    await dockerCli('pull', '-q', ref);
    const applyTimes: number[] = [];
    const runTimes: number[] = [];
    const viaRuntime = async (round: number) => {
      const t0 = performance.now();
      const r = await runtime.apply(desired(release('bench', round + 1, images[0])), 'recreate', ctx);
      applyTimes.push(performance.now() - t0);
      if (!r.ok) throw new Error(`apply failed: ${r.reason}\n${r.log}`);
      await runtime.remove('bench');
    };
    const viaCli = async () => {
      const port = await freePort();
      const t0 = performance.now();
      const id = (
        await dockerCli('run', '-d', '--init', '--restart', 'unless-stopped', '--label', `${TEST_LABEL}=${label}`, '-p', `127.0.0.1:${port}:8080`, ref)
      ).trim();
      const h = await waitHealthy(`127.0.0.1:${port}`, CHECK);
      runTimes.push(performance.now() - t0);
      if (!h.ok) throw new Error(`docker run: not healthy: ${h.reason}`);
      await dockerCli('rm', '-f', id);
    };
    // One of each to warm up, then interleaved rounds.
    await viaRuntime(100);
    await viaCli();
    applyTimes.length = 0;
    runTimes.length = 0;
    for (let round = 0; round < ROUNDS; round++) {
      if (round % 2) {
        await viaCli();
        await viaRuntime(round);
      } else {
        await viaRuntime(round);
        await viaCli();
      }
    }
    const applyMs = median(applyTimes);
    const runMs = median(runTimes);
    const ratio = applyMs / runMs;

    // 2. Blue-green under a steady loop of requests on the public port.
    const first = await runtime.apply(desired(release('bg', 1, images[0])), 'recreate', ctx);
    if (!first.ok) throw new Error(`apply failed: ${first.reason}`);
    const loop = new RequestLoop(sw.address, '/version');
    loop.start();
    const switchTimes: number[] = [];
    try {
      for (let i = 0; i < SWITCHES; i++) {
        const sentBefore = loop.sent;
        while (loop.sent < sentBefore + 20) await new Promise((r) => setTimeout(r, 10));
        const t0 = performance.now();
        const r = await runtime.apply(desired(release('bg', i + 2, images[(i + 1) % 2])), 'blue-green', ctx);
        switchTimes.push(performance.now() - t0);
        if (!r.ok) throw new Error(`blue-green failed: ${r.reason}\n${r.log}`);
      }
      const sentAfter = loop.sent;
      while (loop.sent < sentAfter + 20) await new Promise((r) => setTimeout(r, 10));
    } finally {
      await loop.stop();
      await runtime.remove('bg');
    }

    const f = (ms: number) => `${Math.round(ms)} ms`;
    return {
      name: 'deploy-docker',
      lines: [
        `deploy of a small HTTP image (busybox httpd, by digest), healthy on GET /healthz, median of ${ROUNDS}:`,
        `  DockerRuntime.apply (recreate)     ${f(applyMs)}   (${applyTimes.map(f).join(', ')})`,
        `  docker run -d + the same wait      ${f(runMs)}   (${runTimes.map(f).join(', ')})`,
        `  ratio ${ratio.toFixed(2)}x (target < 1.2x)`,
        `blue-green under a steady request loop on the public port: ${SWITCHES} switches (median ${f(median(switchTimes))} each, ${500} ms drain included),`,
        `  ${loop.sent} requests, ${loop.failures.length} failed (target 0)${loop.failures.length ? `: ${[...new Set(loop.failures)].join(', ')}` : ''}`,
      ],
      figures: {
        applyMs: Math.round(applyMs),
        dockerRunMs: Math.round(runMs),
        ratio: Math.round(ratio * 100) / 100,
        blueGreenSwitches: SWITCHES,
        blueGreenSwitchMs: Math.round(median(switchTimes)),
        blueGreenRequests: loop.sent,
        blueGreenFailed: loop.failures.length,
      },
    };
  } finally {
    runtime.dispose();
    await sw.close();
    await removeByLabel(docker, label);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchDeployDocker().then(
    (r) => {
      for (const line of r.lines) console.log(line);
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
