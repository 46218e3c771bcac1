import { Document } from 'yaml';
import type { DriftItem, EnvironmentState, LiveInstance, LiveState, Release, RuntimeName } from '../protocol';
import { contentDiff, describeArtifact } from './state';

/** Variables the runtimes set themselves; they are not the release's and never drift. */
const RUNTIME_ENV = /^(PORT|CONVEYOR_[A-Z_]+)$/;

/** The differences between the desired state in git and the release that is live: what a sync would deploy. */
export function desiredDiff(desired: EnvironmentState, live: Release | undefined): DriftItem[] {
  if (!live) {
    return [{ path: 'artifact', kind: 'missing', desired: describeArtifact(desired.artifact), live: null, message: `nothing is deployed; git wants ${describeArtifact(desired.artifact)}` }];
  }
  return contentDiff(desired, live).map(([p, want, have]) => ({ path: p, kind: 'changed' as const, desired: want, live: have, message: `${p}: git says ${want}, ${live.environment}@${live.number} has ${have}` }));
}

function short(id: string): string {
  return /^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id;
}

/**
 * The differences between the live release and what the runtime reports: drift. Instances of
 * other releases, or extra copies, are `extra` (what `prune` removes); a stopped or missing
 * instance, or one whose image or variables differ from the release, is drift that `selfHeal`
 * puts right by applying the release again.
 */
export function liveDiff(release: Release, live: LiveState, runtime: RuntimeName): DriftItem[] {
  const items: DriftItem[] = [];
  const mine = live.instances.filter((i) => i.release === release.number);
  const others = live.instances.filter((i) => i.release !== release.number);
  for (const o of others) {
    items.push({
      path: `instance ${short(o.id)}`,
      kind: 'extra',
      desired: null,
      live: `release ${Number.isFinite(o.release) ? o.release : '?'} (${o.state})`,
      message: `instance ${short(o.id)} of release ${Number.isFinite(o.release) ? o.release : '?'} runs in ${release.environment} but only release ${release.number} is desired`,
    });
  }
  for (const i of mine.filter((x) => x.state === 'exited')) {
    items.push({ path: `instance ${short(i.id)}`, kind: 'stopped', desired: 'running', live: 'exited', message: `instance ${short(i.id)} of ${release.environment}@${release.number} is stopped` });
  }
  const serving = mine.filter((x) => x.state === 'running' || x.state === 'starting');
  // The process runtime runs one instance whatever `replicas` says (it says so when deploying).
  const want = runtime === 'process' ? 1 : release.replicas;
  if (serving.length < want) {
    items.push({
      path: 'replicas',
      kind: 'missing',
      desired: String(want),
      live: String(serving.length),
      message: serving.length === 0 ? `no instance of ${release.environment}@${release.number} runs (${want} desired)` : `${serving.length} of ${want} instances of ${release.environment}@${release.number} run`,
    });
  } else if (serving.length > want) {
    for (const extra of serving.slice(want)) {
      items.push({ path: `instance ${short(extra.id)}`, kind: 'extra', desired: null, live: 'running', message: `instance ${short(extra.id)} is one more copy of ${release.environment}@${release.number} than the ${want} desired` });
    }
  }
  for (const i of serving) {
    const digest = release.artifact.digest;
    if (i.artifactDigest !== digest) {
      items.push({ path: `image (${short(i.id)})`, kind: 'changed', desired: describeArtifact(release.artifact), live: i.artifactDigest || '(unknown)', message: `instance ${short(i.id)} runs ${i.artifactDigest || 'an unknown image'}, not ${describeArtifact(release.artifact)}` });
    }
    for (const k of new Set([...Object.keys(release.env), ...Object.keys(i.env).filter((x) => !RUNTIME_ENV.test(x))])) {
      if (RUNTIME_ENV.test(k)) continue;
      if (release.env[k] !== i.env[k]) {
        items.push({ path: `env.${k} (${short(i.id)})`, kind: 'changed', desired: release.env[k] ?? '(unset)', live: i.env[k] ?? '(unset)', message: `instance ${short(i.id)} has ${k}=${i.env[k] ?? '(unset)'}, the release says ${release.env[k] ?? '(unset)'}` });
      }
    }
    const port = i.labels['conveyor.container-port'];
    if (port !== undefined && port !== String(release.containerPort)) {
      items.push({ path: `containerPort (${short(i.id)})`, kind: 'changed', desired: String(release.containerPort), live: port, message: `instance ${short(i.id)} listens on ${port}, the release says ${release.containerPort}` });
    }
  }
  return items;
}

/** The live state written like a state file, so that the editor can diff the two line by line. */
export function renderLive(environment: string, release: Release | undefined, live: LiveState | null, runtime: RuntimeName, problem: string | null): string {
  const serving = (live?.instances ?? []).filter((i) => (!release || i.release === release.number) && (i.state === 'running' || i.state === 'starting'));
  const first: LiveInstance | undefined = serving[0] ?? live?.instances[0];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(first?.env ?? {})) if (!RUNTIME_ENV.test(k)) env[k] = v;
  const artifact: Record<string, unknown> = release
    ? release.artifact.kind === 'image'
      ? { kind: 'image', repository: release.artifact.repository, digest: first?.artifactDigest || '(none running)' }
      : { kind: 'files', name: release.artifact.name, digest: first?.artifactDigest || '(none running)' }
    : { kind: '(nothing deployed)' };
  const doc = new Document({
    environment,
    artifact,
    command: release?.command ?? [],
    env,
    replicas: serving.length,
    containerPort: first?.labels['conveyor.container-port'] ? Number(first.labels['conveyor.container-port']) : (release?.containerPort ?? null),
    source: { release: release?.number ?? null, run: release?.runId ?? null, commit: release?.commit ?? null },
    instances: (live?.instances ?? []).map((i) => ({ id: short(i.id), release: i.release, state: i.state, address: i.address })),
  });
  doc.commentBefore = problem
    ? ` Live state of "${environment}" could not be read from the ${runtime} runtime:\n ${problem}`
    : ` Live state of "${environment}", as the ${runtime} runtime reports it now.\n Compare it with the desired state in git: every difference is drift or a change not yet applied.`;
  for (const key of ['source', 'command']) {
    const n = doc.get(key, true) as { flow?: boolean } | undefined;
    if (n) n.flow = true;
  }
  const inst = doc.get('instances', true) as { items?: { flow?: boolean }[] } | undefined;
  for (const item of inst?.items ?? []) item.flow = true;
  return doc.toString({ lineWidth: 0 });
}
