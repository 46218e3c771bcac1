import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type Docker from 'dockerode';
import type { Release } from '../../agent/protocol';
import type { ApplyContext, RuntimeServices } from '../../agent/runtimes/runtime';
import { buildImage, type BuiltImage } from '../../agent/steps/image-build';
import { copyFixture, freePort, httpGet, TcpSwitch, TEST_LABEL } from './docker';

/** What a suite undoes in its after hook, last first. */
export type Cleanup = (() => Promise<void> | void)[];

/** A release of the environment `web`: GREETING=hello, container port 8080, one replica, run #number; `extra` overrides. */
export function testRelease(number: number, artifact: Release['artifact'], extra: Partial<Release> = {}): Release {
  return {
    environment: 'web',
    number,
    artifact,
    command: [],
    env: { GREETING: 'hello' },
    containerPort: 8080,
    replicas: 1,
    runId: number,
    commit: 'c'.repeat(40),
    createdAt: new Date().toISOString(),
    createdBy: 'test',
    ...extra,
  };
}

/** The artifact of a built image, by digest. */
export function imageArtifact(image: BuiltImage): Release['artifact'] {
  return { kind: 'image', repository: image.repository, digest: image.digest };
}

/** An ApplyContext that appends each progress line to `progress`. */
export function applyContext(progress: string[], signal = new AbortController().signal): ApplyContext {
  return { progress: (m) => progress.push(m), signal };
}

/**
 * Builds the httpd fixture into `repository` twice, as v1 and v2 (GET /version answers "1" or
 * "2"), labelled TEST_LABEL=label; the build folders go at cleanup.
 */
export async function buildHttpdVersions(docker: Docker, repository: string, label: string, cleanup: Cleanup): Promise<[BuiltImage, BuiltImage]> {
  const built: BuiltImage[] = [];
  for (const v of ['1', '2']) {
    const dir = copyFixture('httpd');
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const r = await buildImage({ docker, contextDir: dir, repository, tag: `v${v}`, buildArgs: { VERSION: v }, labels: { [TEST_LABEL]: label } });
    assert.ok(r.ok, r.ok ? '' : `${r.error.reason}\n${r.error.log}`);
    built.push(r.value);
  }
  return [built[0], built[1]];
}

/** What a runtime under test gets from the "agent": a switch for the public port and a state folder, both gone at cleanup. */
export interface TestServices {
  sw: TcpSwitch;
  services: RuntimeServices;
  stateDir: string;
}

/** Starts a TcpSwitch on a free port and makes a state folder named `prefix`...; `allocatePort` hands out instance ports. */
export async function startTestServices(prefix: string, allocatePort: () => Promise<number>, cleanup: Cleanup): Promise<TestServices> {
  const sw = new TcpSwitch(await freePort());
  await sw.start();
  cleanup.push(() => sw.close());
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup.push(() => fs.rmSync(stateDir, { recursive: true, force: true }));
  return { sw, services: { allocatePort, route: sw.route, artifactsDir: path.join(stateDir, 'artifacts'), stateDir }, stateDir };
}

/** What GET /version answers at `address` (the served release's version), or the error's code. */
export async function versionAt(address: string): Promise<string> {
  const r = await httpGet(address, '/version');
  return 'body' in r ? r.body.trim() : r.error;
}
