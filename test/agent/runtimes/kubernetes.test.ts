import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import type { HealthCheck, Release } from '../../../agent/protocol';
import {
  ANNOTATION,
  FIELD_MANAGER,
  KubernetesRuntime,
  kubernetesSettingsOf,
  LABEL,
  loadManifests,
  objectName,
  renderManifests,
  type ManifestInput,
} from '../../../agent/runtimes/kubernetes';
import type { ApplyContext, ApplyResult, DesiredState } from '../../../agent/runtimes/runtime';
import { freePort } from '../../support/docker';
import { startAgent } from '../../support/fixtures';
import { startCluster, type Cluster } from '../../support/kubernetes';
import { testRelease } from '../../support/runtimes';

const CHECK: HealthCheck = { kind: 'http', path: '/healthz', timeoutMs: 20_000, intervalMs: 1000 };
const REPOSITORY = '127.0.0.1:5000/conveyor-test-web';

function digestOf(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

function release(number: number, extra: Partial<Release> = {}): Release {
  return testRelease(number, { kind: 'image', repository: REPOSITORY, digest: digestOf(`web-${number}`) }, { env: { GREETING: `hello ${number}` }, ...extra });
}

function input(r: Release, extra: Partial<ManifestInput> = {}): ManifestInput {
  return { release: r, healthCheck: CHECK, secrets: { API_TOKEN: 's3cret' }, namespace: 'staging', strategy: 'blue-green', ...extra };
}

/** The apply's result; the fake kubelet's work must succeed too, unless the apply failed (then its pods may never come). */
async function deploy(apply: Promise<ApplyResult>, ...kubelet: Promise<unknown>[]): Promise<ApplyResult> {
  const marked = Promise.all(kubelet);
  const r = await apply;
  if (r.ok) await marked;
  else marked.catch(() => undefined);
  return r;
}

/** `file:line:column` of the first line of `lines` that starts (after its indentation) with `start`. */
function positionOf(file: string, lines: string[], start: string): string {
  const i = lines.findIndex((l) => l.trimStart().startsWith(start));
  assert.ok(i >= 0, `no line starts with ${start}`);
  return `${file}:${i + 1}:${lines[i].length - lines[i].trimStart().length + 1}`;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Polls `probe` until it returns a value that is not undefined (at most `ms`). */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms / 1000}s${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('kubernetes manifests (rendered and the user\'s, validated offline)', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-k8s-manifests-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('renders a Deployment, Service, ConfigMap and Secret that the Kubernetes schemas accept', () => {
    const r = release(7, { command: ['node', 'server.js'], replicas: 2 });
    const objects = renderManifests(input(r));
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata?.name}`),
      ['ConfigMap/web-env-7', 'Secret/web-secrets-7', 'Service/web', 'Deployment/web'],
    );
    const models = { ConfigMap, Secret, Service, Deployment } as Record<string, new (data: never) => { validate(): void }>;
    for (const o of objects) new models[o.kind!](o as never).validate();

    for (const o of objects) {
      assert.equal(o.metadata?.namespace, 'staging');
      assert.equal(o.metadata?.labels?.[LABEL.managed], 'true');
      assert.equal(o.metadata?.labels?.[LABEL.environment], 'web');
      assert.equal(o.metadata?.labels?.[LABEL.release], '7');
    }
    const [config, secret, service, deployment] = objects as any[];
    assert.deepEqual(config.data, { GREETING: 'hello 7', PORT: '8080' });
    assert.deepEqual(secret.stringData, { API_TOKEN: 's3cret' });
    assert.deepEqual(service.spec.ports, [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'TCP' }]);
    assert.equal(deployment.spec.replicas, 2);
    assert.deepEqual(deployment.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: '100%', maxUnavailable: 0 } });
    const pod = deployment.spec.template;
    assert.equal(pod.metadata.labels[LABEL.release], '7');
    assert.equal(pod.metadata.labels[LABEL.containerPort], '8080');
    assert.equal(pod.metadata.labels[LABEL.commit], r.commit);
    // The selector must not change between releases (it is immutable): no release in it.
    assert.deepEqual(deployment.spec.selector.matchLabels, { [LABEL.managed]: 'true', [LABEL.environment]: 'web' });
    const [container] = pod.spec.containers;
    assert.equal(container.image, `${REPOSITORY}@${r.artifact.digest}`);
    assert.deepEqual(container.args, ['node', 'server.js']);
    assert.deepEqual(container.envFrom, [{ configMapRef: { name: 'web-env-7' } }, { secretRef: { name: 'web-secrets-7' } }]);
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/healthz', port: 8080 });
    assert.equal(JSON.parse(deployment.metadata.annotations[ANNOTATION.health]).timeoutMs, CHECK.timeoutMs);

    const recreate = renderManifests(input(release(8), { strategy: 'recreate', secrets: {} }));
    assert.equal(recreate.filter((o) => o.kind === 'Secret').length, 0);
    assert.deepEqual((recreate.find((o) => o.kind === 'Deployment') as any).spec.strategy, { type: 'Recreate' });
  });

  it('names objects after the environment as a DNS label, keeping distinct names distinct', () => {
    assert.equal(objectName('web'), 'web');
    assert.match(objectName('Web_API'), /^web-api-[0-9a-f]{6}$/);
    assert.notEqual(objectName('Web'), objectName('web'));
  });

  it('reads the user\'s manifests and gives the release\'s container its image, labels and variables', () => {
    fs.writeFileSync(
      path.join(dir, 'app.yaml'),
      [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: { name: api }',
        'spec:',
        '  selector: { matchLabels: { app: api } }',
        '  template:',
        '    metadata: { labels: { app: api } }',
        '    spec:',
        '      containers:',
        `      - { name: proxy, image: "127.0.0.1:5000/proxy:1", ports: [{ containerPort: 9000 }] }`,
        `      - { name: api, image: "${REPOSITORY}:latest" }`,
        '---',
        'apiVersion: v1',
        'kind: Service',
        'metadata: { name: api }',
        'spec: { selector: { app: api }, ports: [{ port: 80, targetPort: 9000 }] }',
        '',
      ].join('\n'),
    );
    const objects = loadManifests([dir], input(release(3)));
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata?.name}`),
      ['ConfigMap/web-env-3', 'Secret/web-secrets-3', 'Deployment/api', 'Service/api'],
    );
    const deployment = objects[2] as any;
    assert.equal(deployment.metadata.namespace, 'staging');
    assert.equal(deployment.metadata.labels[LABEL.environment], 'web');
    assert.equal(deployment.spec.template.metadata.labels.app, 'api');
    assert.equal(deployment.spec.template.metadata.labels[LABEL.release], '3');
    assert.equal(deployment.spec.template.metadata.annotations[ANNOTATION.container], 'api');
    const [proxy, api] = deployment.spec.template.spec.containers;
    assert.equal(proxy.image, '127.0.0.1:5000/proxy:1');
    assert.equal(api.image, `${REPOSITORY}@${release(3).artifact.digest}`);
    assert.deepEqual(api.envFrom, [{ configMapRef: { name: 'web-env-3' } }, { secretRef: { name: 'web-secrets-3' } }]);
    // Ports without a protocol get TCP (server-side apply needs it).
    assert.equal(proxy.ports[0].protocol, 'TCP');
    assert.equal((objects[3] as any).spec.ports[0].protocol, 'TCP');
    new Deployment(deployment).validate();
    new Service(objects[3] as never).validate();
  });

  it('says what is wrong with manifests and settings', () => {
    const bad = path.join(dir, 'bad');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'a.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x, namespace: prod }\n');
    assert.throws(() => loadManifests([bad], input(release(1))), /ConfigMap x \(.*a\.yaml:1\) names namespace "prod" but the environment deploys to "staging"/);
    fs.writeFileSync(path.join(bad, 'a.yaml'), 'kind: ConfigMap\n');
    assert.throws(() => loadManifests([bad], input(release(1))), /a\.yaml:1: a manifest needs apiVersion, kind and metadata\.name/);
    fs.writeFileSync(path.join(bad, 'a.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: { name: x }\n');
    assert.throws(() => loadManifests([bad], input(release(1))), /Namespace x .* is cluster-scoped/);
    fs.writeFileSync(path.join(bad, 'a.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n');
    assert.throws(() => loadManifests([bad], input(release(1))), /no workload/);
    assert.throws(() => loadManifests([path.join(dir, 'nope')], input(release(1))), /does not exist/);

    assert.deepEqual(kubernetesSettingsOf({ kubernetes: { kubeconfig: 'k/config', manifests: 'deploy', namespace: 'team-a' } }, '/ws'), {
      kubeconfig: '/ws/k/config',
      manifests: ['/ws/deploy'],
      namespace: 'team-a',
    });
    assert.deepEqual(kubernetesSettingsOf({ resources: { cpus: 1 } }, '/ws'), {});
    assert.throws(() => kubernetesSettingsOf({ kubernetes: { manifests: 42 } }, '/ws'), /settings\.kubernetes\.manifests must be a path or a list of paths/);
    assert.throws(() => kubernetesSettingsOf({ kubernetes: { namespace: 'Team A' } }, '/ws'), /not a valid namespace name/);
  });
});

describe('KubernetesRuntime (real kube-apiserver and controller-manager, fake kubelet)', function () {
  let cluster: Cluster;
  let ns: string;
  let runtime: KubernetesRuntime;
  const progress: string[] = [];
  const ctx = (signal = new AbortController().signal): ApplyContext => ({ progress: (m) => progress.push(m), signal });
  const desired = (r: Release, secrets: Record<string, string> = { API_TOKEN: 's3cret' }): DesiredState => ({ release: r, healthCheck: CHECK, publicPort: 0, secrets });
  const pods = (r: number, env = 'web') => `${LABEL.environment}=${env},${LABEL.release}=${r}`;
  const get = async (p: string) => {
    const r = await cluster.request('GET', p);
    return r.status === 200 ? r.body : undefined;
  };

  before(async function () {
    this.timeout(90_000);
    cluster = await startCluster();
    ns = cluster.uniqueNamespace('conveyor');
    runtime = new KubernetesRuntime({ kubeconfig: cluster.kubeconfigPath, namespace: ns, debounceMs: 100 });
  });

  after(async () => {
    runtime?.dispose();
    await cluster?.stop();
  });

  it('deploys release 1: applied server-side by "conveyor" with its labels, and Healthy once its pod is ready', async () => {
    assert.equal(await runtime.health('web'), 'Missing');
    const r = await deploy(runtime.apply(desired(release(1)), 'recreate', ctx()), cluster.fakeKubelet.markReady(ns, pods(1)));
    assert.ok(r.ok, r.ok ? '' : `${r.reason}\n${r.log}`);
    assert.equal(r.live.instances.length, 1);
    const [i] = r.live.instances;
    assert.equal(i.environment, 'web');
    assert.equal(i.release, 1);
    assert.equal(i.state, 'running');
    assert.equal(i.artifactDigest, release(1).artifact.digest);
    assert.equal(i.address, null);
    // The release's variables and PORT; the secret is in a Secret, not reported.
    assert.deepEqual(i.env, { GREETING: 'hello 1', PORT: '8080' });
    assert.equal(i.labels[LABEL.managed], 'true');
    assert.equal(i.labels[LABEL.containerPort], '8080');
    assert.equal(await runtime.health('web'), 'Healthy');
    assert.ok(progress.some((m) => /waiting for the rollout/.test(m)), progress.join('\n'));

    // The namespace was made; each object carries the labels and is managed by "conveyor" (Apply).
    assert.ok(await get(`/api/v1/namespaces/${ns}`));
    for (const p of [`/apis/apps/v1/namespaces/${ns}/deployments/web`, `/api/v1/namespaces/${ns}/services/web`, `/api/v1/namespaces/${ns}/configmaps/web-env-1`, `/api/v1/namespaces/${ns}/secrets/web-secrets-1`]) {
      const o = await get(p);
      assert.ok(o, `${p} exists`);
      assert.equal(o.metadata.labels[LABEL.release], '1', p);
      assert.equal(o.metadata.labels[LABEL.environment], 'web', p);
      const managers = (o.metadata.managedFields as { manager: string; operation: string }[]).filter((m) => m.manager === FIELD_MANAGER);
      assert.deepEqual(
        managers.map((m) => m.operation),
        ['Apply'],
        p,
      );
    }
    const deployment = await get(`/apis/apps/v1/namespaces/${ns}/deployments/web`);
    assert.equal(deployment.spec.strategy.type, 'Recreate');
    assert.equal(deployment.spec.template.spec.containers[0].image, `${REPOSITORY}@${release(1).artifact.digest}`);
    const secret = await get(`/api/v1/namespaces/${ns}/secrets/web-secrets-1`);
    assert.equal(Buffer.from(secret.data.API_TOKEN, 'base64').toString(), 's3cret');
  });

  it('rolls back to release 1 when the pods of release 2 fail', async () => {
    progress.length = 0;
    const r = await deploy(runtime.apply(desired(release(2)), 'blue-green', ctx()), cluster.fakeKubelet.markFailed(ns, pods(2)));
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.equal(r.restored, true, r.reason);
    assert.match(r.reason, /release 2 failed: pod web-[a-z0-9-]+: phase Failed: exit code 1 \(Error\)/);
    // The log says what the pods did.
    assert.match(r.log, /pod web-[a-z0-9-]+: phase Failed/);
    assert.match(r.log, /container app: terminated, exit code 1/);
    assert.ok(progress.some((m) => /restoring release 1/.test(m)), progress.join('\n'));

    const deployment = await get(`/apis/apps/v1/namespaces/${ns}/deployments/web`);
    assert.equal(deployment.metadata.labels[LABEL.release], '1');
    assert.equal(deployment.spec.template.metadata.labels[LABEL.release], '1');
    assert.equal(deployment.spec.template.spec.containers[0].image, `${REPOSITORY}@${release(1).artifact.digest}`);
    assert.equal(await get(`/api/v1/namespaces/${ns}/configmaps/web-env-2`), undefined);
    assert.equal(await get(`/api/v1/namespaces/${ns}/secrets/web-secrets-2`), undefined);
    assert.ok(await get(`/api/v1/namespaces/${ns}/configmaps/web-env-1`));
    const secret = await get(`/api/v1/namespaces/${ns}/secrets/web-secrets-1`);
    assert.equal(Buffer.from(secret.data.API_TOKEN, 'base64').toString(), 's3cret');
    // Only what Conveyor set is applied again: the Service's clusterIP stays the server's.
    const service = await get(`/api/v1/namespaces/${ns}/services/web`);
    const mine = service.metadata.managedFields.find((m: { manager: string }) => m.manager === FIELD_MANAGER);
    assert.equal(JSON.stringify(mine.fieldsV1).includes('clusterIP'), false);
    const live = await eventually('only release 1 runs', async () => {
      const l = await runtime.observe('web');
      return l.instances.every((x) => x.release === 1) ? l : undefined;
    });
    assert.deepEqual(
      live.instances.map((x) => [x.release, x.state]),
      [[1, 'running']],
    );
    assert.equal(await runtime.health('web'), 'Healthy');
  });

  it('turns a 422 into the object, the field and the reason, and changes nothing', async () => {
    const r = await runtime.apply(desired(release(3, { env: { 'BAD NAME': 'x' } })), 'blue-green', ctx());
    assert.ok(!r.ok);
    assert.equal(r.restored, true);
    assert.match(r.reason, /^ConfigMap web-env-3: the API server rejected it \(422 Invalid\): data\[BAD NAME\]: Invalid value: "BAD NAME": a valid config key must consist of/);

    const labelled = new KubernetesRuntime({ kubeconfig: cluster.kubeconfigPath, namespace: ns, labels: { team: 'not valid!' } });
    const l = await labelled.apply(desired(release(4)), 'blue-green', ctx());
    assert.ok(!l.ok);
    assert.match(l.reason, /\(422 Invalid\): metadata\.labels: Invalid value: "not valid!"/);
    labelled.dispose();

    const deployment = await get(`/apis/apps/v1/namespaces/${ns}/deployments/web`);
    assert.equal(deployment.metadata.labels[LABEL.release], '1');
    assert.equal(await get(`/api/v1/namespaces/${ns}/configmaps/web-env-3`), undefined);
  });

  it('starts the reason of a deploy the API server refuses with the line in conveyor.yml where the fix is', async () => {
    const workspace = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-k8s-config-')));
    const at = cluster.uniqueNamespace('conveyor-yml');
    // Valid for conveyor.yml, refused by the API server: a ConfigMap key takes at most 253
    // characters, and a label value (the environment's name is one) ends with a letter or digit.
    const long = `V${'A'.repeat(253)}`;
    const lines = [
      'pipeline: {stages: [{name: test, run: "true"}]}',
      'environments:',
      '  web:',
      '    runtime: kubernetes',
      `    kubernetes: { kubeconfig: ${JSON.stringify(cluster.kubeconfigPath)}, namespace: ${at} }`,
      '    env:',
      '      GREETING: hello',
      `      ${long}: x`,
      '  web-:',
      '    runtime: kubernetes',
      `    kubernetes: { kubeconfig: ${JSON.stringify(cluster.kubeconfigPath)}, namespace: ${at} }`,
      '  locked:',
      '    runtime: kubernetes',
      '    kubernetes:',
      `      namespace: ${at}`,
      `      kubeconfig: ${JSON.stringify(cluster.writeKubeconfig(cluster.unprivilegedToken))}`,
      '',
    ];
    fs.writeFileSync(path.join(workspace, 'conveyor.yml'), lines.join('\n'));
    const agent = await startAgent(workspace);
    try {
      assert.ok(agent.config().valid, JSON.stringify(agent.config().diagnostics));
      const reason = async (environment: string) => {
        const s = agent.deployer.deploy({ environment, artifact: release(1).artifact, runId: null, stage: null, commit: null, requestedBy: 'test' }, 'manual');
        assert.ok(s.ok, JSON.stringify(s));
        const d = await s.value.done;
        assert.equal(d.status, 'failed', d.reason ?? '');
        return d.reason ?? '';
      };
      assert.match(
        await reason('web'),
        new RegExp(`^${escape(positionOf('conveyor.yml', lines, `${long}:`))}: ConfigMap web-env-1: the API server rejected it \\(422 Invalid\\): data\\[${long}\\]: Invalid value: .*must be no more than 253 characters.*; rename that variable under env:$`),
      );
      assert.match(
        await reason('web-'),
        new RegExp(`^${escape(positionOf('conveyor.yml', lines, 'web-:'))}: the environment's name "web-" is not a valid Kubernetes label value, and it is the value of the label ${escape(LABEL.environment)} on its objects: rename the environment`),
      );
      // No field: the environment's kubeconfig, whose user lacks the permission.
      assert.match(
        await reason('locked'),
        new RegExp(`^${escape(positionOf('conveyor.yml', lines, 'kubeconfig:'))}: [a-z.]+ is forbidden: User "nobody" cannot list .*\\(403 Forbidden\\): the kubeconfig's user "test-user" lacks that RBAC permission`),
      );
    } finally {
      await agent.stop();
      fs.rmSync(workspace, { recursive: true, force: true });
    }
  });

  it('points a field of the user\'s manifests that the API server refuses at its file, line and column', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-k8s-user-'));
    try {
      const file = path.join(dir, 'api.yaml');
      const lines = [
        'apiVersion: v1',
        'kind: Service',
        'metadata: { name: bad-api }',
        'spec: { selector: { app: bad-api }, ports: [{ port: 80, targetPort: 8080 }] }',
        '---',
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata:',
        '  name: bad-api',
        'spec:',
        '  selector:',
        '    matchLabels: { app: bad-api }',
        '  template:',
        '    metadata:',
        '      labels: { app: bad-api }',
        '    spec:',
        '      containers:',
        '        - image: placeholder',
        '          name: Not_A_Name',
        '',
      ];
      fs.writeFileSync(file, lines.join('\n'));
      const user = new KubernetesRuntime({ kubeconfig: cluster.kubeconfigPath, namespace: ns, manifests: [dir] });
      const r = await user.apply(desired(release(1, { environment: 'bad-api' })), 'recreate', ctx());
      user.dispose();
      assert.ok(!r.ok);
      // The value's own column: `name: Not_A_Name` is written at column 11, its value at 17.
      const name = positionOf(file, lines, 'name: Not_A_Name').replace(/:(\d+)$/, (_, col: string) => `:${Number(col) + 'name: '.length}`);
      assert.match(r.reason, new RegExp(`^${escape(name)}: Deployment bad-api: the API server rejected it \\(422 Invalid\\): spec\\.template\\.spec\\.containers\\[0\\]\\.name: Invalid value: "Not_A_Name": .*; fix that field in api\\.yaml$`));
      assert.equal(await get(`/apis/apps/v1/namespaces/${ns}/deployments/bad-api`), undefined);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says to check the kubeconfig\'s user on a wrong token (401), RBAC on 403, and the server when it cannot be reached', async () => {
    const wrong = new KubernetesRuntime({ kubeconfig: cluster.writeKubeconfig('not-the-token'), namespace: ns });
    const r = await wrong.apply(desired(release(5)), 'recreate', ctx());
    assert.ok(!r.ok);
    assert.equal(r.restored, false);
    assert.match(r.reason, /rejected the credentials of the kubeconfig's user "test-user" \(401 Unauthorized\): check that user's token or client certificate in .*kubeconfig-/);
    await assert.rejects(wrong.observe('web'), /401 Unauthorized/);

    const nobody = new KubernetesRuntime({ kubeconfig: cluster.writeKubeconfig(cluster.unprivilegedToken), namespace: ns });
    await assert.rejects(nobody.observe('web'), /(pods|configmaps) is forbidden: User "nobody" cannot list resource "(pods|configmaps)".*\(403 Forbidden\): the kubeconfig's user "test-user" lacks that RBAC permission/);

    const closed = path.join(path.dirname(cluster.kubeconfigPath), 'kubeconfig-closed');
    fs.writeFileSync(closed, fs.readFileSync(cluster.kubeconfigPath, 'utf8').replace(cluster.server, `https://127.0.0.1:${await freePort()}`));
    const down = new KubernetesRuntime({ kubeconfig: closed, namespace: ns });
    const d = await down.apply(desired(release(5)), 'recreate', ctx());
    assert.ok(!d.ok);
    assert.match(d.reason, /^cannot reach the Kubernetes API server at https:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): start the cluster, or check the server of context "test" in .*kubeconfig-closed$/);

    const nowhere = new KubernetesRuntime({ kubeconfig: path.join(path.dirname(cluster.kubeconfigPath), 'kubeconfig-missing'), namespace: ns });
    await assert.rejects(nowhere.health('web'), /the kubeconfig .*-missing \(settings\.kubernetes\.kubeconfig\) does not exist/);
  });

  it('restores release 1 when release 8 is not rolled out within the timeout, or is cancelled', async () => {
    const slow = { ...desired(release(8)), healthCheck: { ...CHECK, timeoutMs: 1500 } };
    const r = await runtime.apply(slow, 'blue-green', ctx());
    assert.ok(!r.ok);
    assert.equal(r.restored, true, r.reason);
    assert.match(r.reason, /^release 8 was not rolled out within 2s: Deployment web: /);
    assert.match(r.log, /pod web-[a-z0-9-]+: phase Pending/);

    const abort = new AbortController();
    const cancelled = runtime.apply(desired(release(9)), 'blue-green', ctx(abort.signal));
    await eventually('release 9 has a pod', async () => ((await get(`/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(pods(9))}`))?.items.length ? true : undefined));
    abort.abort();
    const c = await cancelled;
    assert.ok(!c.ok);
    assert.equal(c.reason, 'cancelled');
    assert.equal(c.restored, true);
    const deployment = await get(`/apis/apps/v1/namespaces/${ns}/deployments/web`);
    assert.equal(deployment.spec.template.metadata.labels[LABEL.release], '1');
    await eventually('only release 1 runs', async () => ((await runtime.observe('web')).instances.every((i) => i.release === 1) ? true : undefined));
    assert.equal(await runtime.health('web'), 'Healthy');
  });

  it('refuses files artifacts with a clear message', async () => {
    const r = await runtime.apply(desired(release(6, { artifact: { kind: 'files', digest: digestOf('f'), name: 'app.tgz' } })), 'recreate', ctx());
    assert.ok(!r.ok);
    assert.match(r.reason, /the kubernetes runtime deploys images; web@6 is a files artifact \(app\.tgz\)/);
  });

  it('reports a pod deleted by hand through watch, observe and health within seconds', async () => {
    const before = await runtime.observe('web');
    assert.equal(before.instances.length, 1);
    const gone = before.instances[0].id;
    let changes = 0;
    const w = runtime.watch('web', () => changes++);
    try {
      // The watch is open once it reports the first change: a label added by hand.
      await eventually('the watch reports a change', async () => {
        await cluster.request('PATCH', `/api/v1/namespaces/${ns}/pods/${gone}`, { metadata: { annotations: { touched: String(Date.now()) } } });
        return changes > 0 ? true : undefined;
      }, 10_000);
      changes = 0;
      const del = await cluster.request('DELETE', `/api/v1/namespaces/${ns}/pods/${gone}`);
      assert.equal(del.status, 200);
      await eventually('the watch reports the deletion', async () => (changes > 0 ? true : undefined), 10_000);
      const live = await eventually('a new pod replaces it', async () => {
        const l = await runtime.observe('web');
        return l.instances.length === 1 && l.instances[0].id !== gone ? l : undefined;
      });
      assert.equal(live.instances[0].state, 'starting');
      assert.equal(await runtime.health('web'), 'Progressing');

      const [fresh] = await cluster.fakeKubelet.markReady(ns, pods(1));
      await eventually('Healthy again', async () => ((await runtime.health('web')) === 'Healthy' ? true : undefined));
      await runtime.removeInstances('web', [fresh]);
      assert.ok(!(await runtime.observe('web')).instances.some((i) => i.id === fresh));
    } finally {
      w.dispose();
    }
  });

  it('prunes objects with its labels that the new release does not have', async () => {
    const stray = await cluster.request('POST', `/api/v1/namespaces/${ns}/configmaps`, {
      metadata: { name: 'stray', labels: { [LABEL.managed]: 'true', [LABEL.environment]: 'web', [LABEL.release]: '1' } },
      data: { a: 'b' },
    });
    assert.equal(stray.status, 201);
    const r = await deploy(runtime.apply(desired(release(7), {}), 'blue-green', ctx()), cluster.fakeKubelet.markReady(ns, pods(7)));
    assert.ok(r.ok, r.ok ? '' : `${r.reason}\n${r.log}`);
    for (const name of ['stray', 'web-env-1']) assert.equal(await get(`/api/v1/namespaces/${ns}/configmaps/${name}`), undefined, name);
    assert.equal(await get(`/api/v1/namespaces/${ns}/secrets/web-secrets-1`), undefined);
    assert.ok(await get(`/api/v1/namespaces/${ns}/configmaps/web-env-7`));
    assert.ok(progress.some((m) => /pruning .*ConfigMap stray/.test(m)), progress.join('\n'));
    await eventually('only release 7 runs', async () => {
      const l = await runtime.observe('web');
      return l.instances.length === 1 && l.instances[0].release === 7 ? true : undefined;
    });
  });

  it('undoes what another field manager added to its objects (a variable and a port in the container, a key in the ConfigMap); another tool\'s annotation stays', async () => {
    const at = `/apis/apps/v1/namespaces/${ns}/deployments/web`;
    const config = `/api/v1/namespaces/${ns}/configmaps/web-env-7`;
    const [app] = (await get(at)).spec.template.spec.containers;
    // By hand, as `kubectl edit` does: changes of another field manager.
    const edit = await cluster.request('PATCH', `${at}?fieldManager=kubectl-edit`, {
      metadata: { annotations: { 'example.com/team': 'payments' } },
      spec: { template: { spec: { containers: [{ ...app, env: [{ name: 'X', value: '1' }], ports: [...app.ports, { name: 'debug', containerPort: 9229, protocol: 'TCP' }] }] } } },
    });
    assert.equal(edit.status, 200, JSON.stringify(edit.body));
    const key = await cluster.request('PATCH', `${config}?fieldManager=kubectl-edit`, { data: { Y: '2' } });
    assert.equal(key.status, 200, JSON.stringify(key.body));
    const edited = await get(at);
    assert.deepEqual(edited.spec.template.spec.containers[0].env, [{ name: 'X', value: '1' }]);
    assert.ok(edited.metadata.managedFields.some((m: { manager: string; fieldsV1: object }) => m.manager === 'kubectl-edit' && JSON.stringify(m.fieldsV1).includes('"f:env"')));

    const r = await runtime.apply(desired(release(7), {}), 'blue-green', ctx());
    const d = await get(at);
    const [container] = d.spec.template.spec.containers;
    assert.equal(container.env, undefined, 'the variable added by hand is gone');
    assert.deepEqual(container.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], 'the port added by hand is gone');
    // The template is release 7's again: its pods serve, and the rollout is done.
    assert.ok(r.ok, r.ok ? '' : `${r.reason}\n${r.log}`);
    assert.equal(d.metadata.annotations['example.com/team'], 'payments', 'an annotation of another tool stays');
    assert.ok(d.metadata.annotations['deployment.kubernetes.io/revision'], 'the controller\'s annotation stays');
    assert.deepEqual((await get(config)).data, { GREETING: 'hello 7', PORT: '8080' }, 'the key added by hand is gone');
    // kubectl-edit keeps what it set outside Conveyor's fields, and nothing else.
    assert.deepEqual(
      d.metadata.managedFields.filter((m: { manager: string }) => m.manager === 'kubectl-edit').map((m: { fieldsV1: object }) => m.fieldsV1),
      [{ 'f:metadata': { 'f:annotations': { 'f:example.com/team': {} } } }],
    );
    const live = await eventually('only pods of the template as rendered run', async () => {
      const l = await runtime.observe('web');
      return l.instances.length === 1 && l.instances[0].state === 'running' ? l : undefined;
    });
    assert.deepEqual(live.instances[0].env, { GREETING: 'hello 7', PORT: '8080' });
  });

  it('applies the user\'s manifests with the release\'s image', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-k8s-user-'));
    try {
      fs.writeFileSync(
        path.join(dir, 'api.yaml'),
        [
          'apiVersion: apps/v1',
          'kind: Deployment',
          'metadata: { name: api }',
          'spec:',
          '  replicas: 5',
          '  selector: { matchLabels: { app: api } }',
          '  template:',
          '    metadata: { labels: { app: api } }',
          '    spec: { containers: [{ name: api, image: "placeholder", ports: [{ containerPort: 8080 }] }] }',
          '---',
          'apiVersion: v1',
          'kind: Service',
          'metadata: { name: api }',
          'spec: { selector: { app: api }, ports: [{ port: 80, targetPort: 8080 }] }',
          '',
        ].join('\n'),
      );
      const user = new KubernetesRuntime({ kubeconfig: cluster.kubeconfigPath, namespace: ns, manifests: [dir] });
      // The release's replicas win over the manifest's, as on every runtime.
      const r1 = release(1, { environment: 'api', replicas: 2 });
      const r = await deploy(user.apply(desired(r1), 'recreate', ctx()), cluster.fakeKubelet.markReady(ns, pods(1, 'api'), { atLeast: 2 }));
      assert.ok(r.ok, r.ok ? '' : `${r.reason}\n${r.log}`);
      assert.equal(r.live.instances.length, 2);
      assert.ok(r.live.instances.every((i) => i.artifactDigest === r1.artifact.digest && i.labels.app === 'api'));
      const d = await get(`/apis/apps/v1/namespaces/${ns}/deployments/api`);
      assert.equal(d.spec.template.spec.containers[0].image, `${REPOSITORY}@${r1.artifact.digest}`);
      assert.equal(d.spec.replicas, 2);
      assert.equal(d.metadata.labels[LABEL.environment], 'api');
      assert.equal((await get(`/api/v1/namespaces/${ns}/services/api`)).spec.ports[0].protocol, 'TCP');
      assert.equal(await user.health('api'), 'Healthy');

      // What another field manager adds inside the user's Deployment goes as well.
      const at = `/apis/apps/v1/namespaces/${ns}/deployments/api`;
      const edit = await cluster.request('PATCH', `${at}?fieldManager=kubectl-edit`, {
        spec: { template: { spec: { volumes: [{ name: 'scratch', emptyDir: {} }], containers: [{ ...d.spec.template.spec.containers[0], env: [{ name: 'X', value: '1' }], volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] }] } } },
      });
      assert.equal(edit.status, 200, JSON.stringify(edit.body));
      const again = await user.apply(desired(r1), 'recreate', ctx());
      const pod = (await get(at)).spec.template.spec;
      assert.deepEqual([pod.containers[0].env, pod.containers[0].volumeMounts, pod.volumes], [undefined, undefined, undefined]);
      assert.equal(pod.containers[0].image, `${REPOSITORY}@${r1.artifact.digest}`);
      assert.ok(again.ok, again.ok ? '' : `${again.reason}\n${again.log}`);
      await user.remove('api');
      user.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('remove() deletes every object of the environment, and its pods go', async () => {
    await runtime.remove('web');
    for (const p of ['apis/apps/v1/namespaces/NS/deployments', 'api/v1/namespaces/NS/services', 'api/v1/namespaces/NS/configmaps', 'api/v1/namespaces/NS/secrets']) {
      const list = await get(`/${p.replace('NS', ns)}?labelSelector=${encodeURIComponent(`${LABEL.environment}=web`)}`);
      assert.deepEqual(list.items, [], p);
    }
    await eventually('the pods are gone', async () => ((await runtime.observe('web')).instances.length === 0 ? true : undefined), 30_000);
    assert.equal(await runtime.health('web'), 'Missing');
  });
});
