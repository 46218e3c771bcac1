import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Agent } from '../../../agent/agent';
import type { EnvironmentStatus, LiveState, RuntimeName, SequencedEvent, SyncInfo } from '../../../agent/protocol';
import { buildImage, type BuiltImage } from '../../../agent/steps/image-build';
import { copyFixture, dockerCli, dockerClient, httpGet, removeByLabel, requireDocker, TEST_LABEL, testRunLabel, uniqueRepository } from '../../support/docker';
import { events } from '../../support/events';
import { startAgent, TempRepo, until } from '../../support/fixtures';
import { ReadyLoop, startCluster, type Cluster } from '../../support/kubernetes';

const HEALTH = 'health: { http: /version, timeout: 30s, interval: 500ms }';

/** Two environments per runtime: one that reports drift, one that heals it. */
const CONFIG = (kubernetes: string) => `
pipeline:
  stages:
    - name: noop
      run: "true"
environments:
  swarm-reported:
    runtime: swarm
    resources: { memory: 32m }
    ${HEALTH}
  swarm-healed:
    runtime: swarm
    resources: { memory: 32m }
    reconcile: { selfHeal: true }
    ${HEALTH}
  kube-reported:
    runtime: kubernetes
    kubernetes: ${kubernetes}
    ${HEALTH}
  kube-healed:
    runtime: kubernetes
    kubernetes: ${kubernetes}
    reconcile: { selfHeal: true }
    ${HEALTH}
gitops: { interval: 5s }
`;

const ENVIRONMENTS = ['swarm-reported', 'swarm-healed', 'kube-reported', 'kube-healed'];

/** A checkout of the state branch, as a person editing the desired state would have. */
class StateCheckout {
  readonly dir: string;
  constructor(source: string) {
    this.dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-state-')));
    fs.rmSync(this.dir, { recursive: true });
    execFileSync('git', ['clone', '-q', '-b', 'conveyor/state', source, this.dir]);
    this.git('config', 'user.email', 'alice@example.com');
    this.git('config', 'user.name', 'Alice');
  }
  git(...args: string[]): string {
    return execFileSync('git', args, { cwd: this.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }
  /** Changes files in one commit and pushes it. */
  edit(changes: Record<string, (text: string) => string>, message: string): void {
    for (const [file, change] of Object.entries(changes)) {
      const f = path.join(this.dir, file);
      const before = fs.readFileSync(f, 'utf8');
      const after = change(before);
      assert.notEqual(after, before, `the edit changes ${file}`);
      fs.writeFileSync(f, after);
    }
    this.git('commit', '-q', '-am', message);
    this.git('push', '-q', 'origin', 'HEAD');
  }
  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * GitOps beyond one machine, through a real agent: environments on a real single-node swarm and
 * on a real kube-apiserver and controller-manager (the test's kubelet marks pods ready), deployed
 * with an image from the real registry, changed by hand, healed by policy, and changed by a
 * commit to the state branch.
 */
describe('gitops: swarm and kubernetes environments through the agent', function () {
  this.timeout(240_000);
  const docker = dockerClient();
  const label = testRunLabel('gitops-cluster');
  let cluster: Cluster;
  let kubelet: ReadyLoop | undefined;
  let ns: string;
  let repo: TempRepo;
  let agent: Agent;
  let image: BuiltImage;
  let repository: string;
  const sync = (env: string): SyncInfo | null => agent.reconciler!.status(env);
  const runtime = (name: RuntimeName) => {
    const r = agent.runtimes.get(name);
    assert.ok(r.ok, r.ok ? '' : r.error);
    return r.value;
  };
  const live = (env: string): Promise<LiveState> => runtime(env.startsWith('kube') ? 'kubernetes' : 'swarm').observe(env);
  const settled = (env: string) => sync(env)?.sync === 'Synced' && sync(env)?.health === 'Healthy' && !agent.deployer.busy(env);

  /** The environment's swarm service (name and spec), found by the agent's scope label. */
  const serviceOf = async (env: string) => {
    const [instance] = (await live(env)).instances;
    assert.ok(instance, `a task of ${env}`);
    const list = await docker.listServices({ filters: { label: [`conveyor.environment=${env}`, `conveyor.scope=${instance.labels['conveyor.scope']}`] } });
    assert.equal(list.length, 1, `one service of ${env}`);
    return (await docker.getService(list[0].ID).inspect()) as { Spec: { Name: string; TaskTemplate: { ContainerSpec: { Image: string; Env: string[] } } } };
  };
  const deploymentOf = async (env: string) => {
    const r = await cluster.request('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${env}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as { spec: { template: { spec: { containers: { name: string; image: string; env?: { name: string; value: string }[] }[] } } } };
  };
  /** Changes the Deployment's container variables by hand (a merge patch, as `kubectl set env` would). */
  const setEnv = async (env: string, vars: { name: string; value: string }[]) => {
    const d = await deploymentOf(env);
    const containers = d.spec.template.spec.containers.map((c) => {
      const changed: { env?: unknown } = { ...c, env: vars };
      if (!vars.length) delete changed.env;
      return changed;
    });
    const r = await cluster.request('PATCH', `/apis/apps/v1/namespaces/${ns}/deployments/${env}`, { spec: { template: { spec: { containers } } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };

  before(async function () {
    this.timeout(180_000);
    await requireDocker(docker);
    const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
      throw new Error('dockerd is not a swarm manager: run `bash test/provision.sh` (test/setup/45-swarm.sh) first');
    }
    repository = uniqueRepository('gitops-cluster');
    const dir = copyFixture('httpd');
    try {
      const built = await buildImage({ docker, contextDir: dir, repository, tag: 'v1', buildArgs: { VERSION: '1' }, labels: { [TEST_LABEL]: label } });
      assert.ok(built.ok, built.ok ? '' : `${built.error.reason}\n${built.error.log}`);
      image = built.value;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    cluster = await startCluster();
    ns = cluster.uniqueNamespace('gitops');
    kubelet = new ReadyLoop(cluster, ns);
    repo = new TempRepo({ 'conveyor.yml': CONFIG(`{ kubeconfig: "${cluster.kubeconfigPath}", namespace: ${ns} }`) });
    agent = await startAgent(repo, { pollMs: 200 });
  });

  after(async () => {
    if (agent) {
      // Paused first, or selfHeal would put a removed service back.
      const swarm = agent.runtimes.get('swarm');
      for (const env of ENVIRONMENTS.filter((e) => e.startsWith('swarm'))) {
        await agent.reconciler?.setPaused(env, true);
        if (swarm.ok) await swarm.value.remove(env).catch(() => undefined);
      }
      await agent.stop();
    }
    await kubelet?.stop();
    await cluster?.stop();
    repo?.dispose();
    await removeByLabel(docker, label);
  });

  it('deploys an image release to each environment: succeeded, Synced and Healthy', async () => {
    const done = await Promise.all(
      ENVIRONMENTS.map((env) => {
        const r = agent.deployer.deploy({ environment: env, artifact: { kind: 'image', repository, digest: image.digest }, runId: null, stage: null, commit: null, requestedBy: 'tester (test)' }, 'manual');
        assert.ok(r.ok, r.ok ? '' : r.error.error);
        return r.value.done;
      }),
    );
    for (const d of done) assert.equal(d.status, 'succeeded', `${d.environment}: ${d.reason}`);
    await until(() => ENVIRONMENTS.every(settled), 'all four Synced and Healthy', 60_000);

    // Swarm: a service of the image by digest, served on the environment's public port.
    const service = await serviceOf('swarm-reported');
    assert.equal(service.Spec.TaskTemplate.ContainerSpec.Image, `${repository}@${image.digest}`);
    const url = await agent.deployer.environmentUrl('swarm-reported');
    assert.ok(url.ok);
    const served = await httpGet(url.value.replace('http://', ''), '/version');
    assert.deepEqual('body' in served ? served.body.trim() : served, '1');
    // Kubernetes: a Deployment of the image by digest, its pod Running.
    const deployment = await deploymentOf('kube-reported');
    assert.equal(deployment.spec.template.spec.containers[0].image, `${repository}@${image.digest}`);
    assert.deepEqual(
      (await live('kube-reported')).instances.map((i) => [i.release, i.state]),
      [[1, 'running']],
    );
    // Each deploy is a commit on the state branch.
    for (const env of ENVIRONMENTS) assert.match(repo.git('show', `conveyor/state:environments/${env}.yml`), new RegExp(`digest: ${image.digest}`));
  });

  it('swarm: `docker service update --env-add` by hand is drift, reported; "Sync now" puts it back', async () => {
    const before = events(agent, 'drift.detected').length;
    const { Spec } = await serviceOf('swarm-reported');
    await dockerCli('service', 'update', '--detach', '--env-add', 'X=1', Spec.Name);
    await until(() => sync('swarm-reported')?.diff.some((i) => i.path.startsWith('env.X')), 'OutOfSync with env.X', 30_000);
    const info = sync('swarm-reported')!;
    assert.equal(info.sync, 'OutOfSync');
    assert.deepEqual(info.causes, ['drift']);
    const item = info.diff.find((i) => i.path.startsWith('env.X'))!;
    assert.deepEqual([item.kind, item.desired, item.live], ['changed', '(unset)', '1']);
    await until(() => events(agent, 'drift.detected').slice(before).some((e) => e.environment === 'swarm-reported' && e.action === 'reported'), 'drift reported');
    assert.ok(!events(agent, 'drift.detected').slice(before).some((e) => e.environment === 'swarm-reported' && e.action !== 'reported'), 'not healed');
    assert.ok((await serviceOf('swarm-reported')).Spec.TaskTemplate.ContainerSpec.Env.includes('X=1'), 'nothing put it back');

    const r = await agent.reconciler!.sync('swarm-reported', false, 'tester (test)');
    assert.ok(r.ok && r.value.deployment, r.ok ? 'a deployment' : r.error.error);
    assert.equal(r.value.deployment.trigger, 'heal');
    await until(() => settled('swarm-reported'), 'Synced and Healthy after Sync now', 60_000);
    assert.ok(!(await serviceOf('swarm-reported')).Spec.TaskTemplate.ContainerSpec.Env.includes('X=1'));
  });

  it('swarm: with selfHeal, the same change is undone and recorded as healed; git is not touched', async () => {
    const commits = repo.git('rev-list', '--count', 'conveyor/state').trim();
    const before = events(agent, 'drift.detected').length;
    const { Spec } = await serviceOf('swarm-healed');
    await dockerCli('service', 'update', '--detach', '--env-add', 'X=1', Spec.Name);
    await until(() => events(agent, 'drift.detected').slice(before).some((e) => e.environment === 'swarm-healed' && e.action === 'healed'), 'healed', 90_000);
    const drift = events(agent, 'drift.detected').slice(before).filter((e) => e.environment === 'swarm-healed');
    assert.equal(drift[0].action, 'healing');
    assert.ok(drift[0].items.some((i) => i.path.startsWith('env.X')), JSON.stringify(drift[0].items));
    await until(() => settled('swarm-healed'), 'Synced and Healthy', 60_000);
    assert.ok(!(await serviceOf('swarm-healed')).Spec.TaskTemplate.ContainerSpec.Env.includes('X=1'));
    assert.ok((await live('swarm-healed')).instances.every((i) => i.env.X === undefined));
    assert.equal(repo.git('rev-list', '--count', 'conveyor/state').trim(), commits);
  });

  it('selfHeal: the environment stays OutOfSync while the heal is applied, and the drift is recorded as healed only after it', async () => {
    const since = agent.store.lastSeq;
    const later = () => agent.store.events(since, 100_000);
    const drift = () => later().filter((e) => e.type === 'drift.detected' && e.environment === 'swarm-healed') as Extract<SequencedEvent, { type: 'drift.detected' }>[];
    const { Spec } = await serviceOf('swarm-healed');
    await dockerCli('service', 'update', '--detach', '--env-add', 'X=2', Spec.Name);
    await until(() => drift().some((e) => e.action === 'healing'), 'healing');
    const [heal] = agent.store.deployments('swarm-healed', 1);
    assert.equal(heal.trigger, 'heal');
    // A look while the heal is applied (swarm rolls the task: seconds).
    await until(() => agent.deployer.busy('swarm-healed'), 'the heal running');
    await agent.reconciler!.check('swarm-healed');
    assert.equal(sync('swarm-healed')!.sync, 'OutOfSync', 'not Synced while the heal is applied');
    assert.ok(!drift().some((e) => e.action === 'healed'), 'not healed before the heal is applied');
    await until(() => settled('swarm-healed'), 'Synced and Healthy', 60_000);
    const healedAt = drift().find((e) => e.action === 'healed')?.seq;
    const appliedAt = later().find((e) => e.type === 'deployment.changed' && e.deployment.id === heal.id && e.deployment.status === 'succeeded')?.seq;
    assert.ok(healedAt && appliedAt && healedAt > appliedAt, `healed (event ${healedAt}) after the heal succeeded (event ${appliedAt})`);
  });

  it('kubernetes: the Deployment\'s env patched by hand is drift, reported and not healed; undone by hand, Synced again', async () => {
    const before = events(agent, 'drift.detected').length;
    await setEnv('kube-reported', [{ name: 'X', value: '1' }]);
    await until(() => sync('kube-reported')?.diff.some((i) => i.path.startsWith('env.X')), 'OutOfSync with env.X', 30_000);
    const info = sync('kube-reported')!;
    assert.equal(info.sync, 'OutOfSync');
    assert.deepEqual(info.causes, ['drift']);
    const item = info.diff.find((i) => i.path.startsWith('env.X'))!;
    assert.deepEqual([item.kind, item.desired, item.live], ['changed', '(unset)', '1']);
    await until(() => events(agent, 'drift.detected').slice(before).some((e) => e.environment === 'kube-reported' && e.action === 'reported'), 'drift reported');
    assert.ok(!events(agent, 'drift.detected').slice(before).some((e) => e.environment === 'kube-reported' && e.action !== 'reported'), 'not healed');
    assert.deepEqual((await deploymentOf('kube-reported')).spec.template.spec.containers[0].env, [{ name: 'X', value: '1' }]);
    // Taken back by hand: the pods of the original template run again, and nothing differs from git.
    await setEnv('kube-reported', []);
    await until(() => settled('kube-reported'), 'Synced and Healthy once undone', 30_000);
    assert.equal(agent.store.deployments('kube-reported', 1)[0].trigger, 'manual', 'no deployment was made');
  });

  it('kubernetes: "Sync now" and selfHeal undo a variable added by hand to the Deployment', async () => {
    await setEnv('kube-reported', [{ name: 'X', value: '1' }]);
    await until(() => sync('kube-reported')?.diff.some((i) => i.path.startsWith('env.X')), 'OutOfSync with env.X', 30_000);
    const r = await agent.reconciler!.sync('kube-reported', false, 'tester (test)');
    assert.ok(r.ok && r.value.deployment, r.ok ? 'a deployment' : r.error.error);
    const heal = r.value.deployment.id;
    await until(() => agent.store.deployments('kube-reported', 5).find((d) => d.id === heal)?.status === 'succeeded', 'the heal deployed', 60_000);
    assert.equal((await deploymentOf('kube-reported')).spec.template.spec.containers[0].env, undefined, 'the variable added by hand is gone');
    await until(() => settled('kube-reported'), 'Synced and Healthy after Sync now', 30_000);

    const before = events(agent, 'drift.detected').length;
    await setEnv('kube-healed', [{ name: 'X', value: '1' }]);
    await until(() => events(agent, 'drift.detected').slice(before).some((e) => e.environment === 'kube-healed' && e.action === 'healed'), 'healed', 60_000);
    await until(() => settled('kube-healed'), 'Synced and Healthy', 30_000);
    assert.equal((await deploymentOf('kube-healed')).spec.template.spec.containers[0].env, undefined);
    assert.ok((await live('kube-healed')).instances.every((i) => i.env.X === undefined));
    // One heal, not a heal after each look.
    assert.equal(agent.store.deployments('kube-healed', 20).filter((d) => d.trigger === 'heal').length, 1);
  });

  it('a commit to the state branch by anyone is applied on both runtimes (the pull path)', async () => {
    const greet = (t: string) => t.replace(/^env: \{\}$/m, 'env:\n  GREETING: from-git');
    const checkout = new StateCheckout(repo.dir);
    try {
      checkout.edit({ 'environments/swarm-healed.yml': greet, 'environments/kube-healed.yml': greet }, 'Say hello from git on swarm and kubernetes');
    } finally {
      checkout.dispose();
    }
    for (const env of ['swarm-healed', 'kube-healed']) {
      await until(() => agent.deployer.liveRelease(env)?.env.GREETING === 'from-git', `${env}: the change applied`, 90_000);
      const [d] = agent.store.deployments(env, 1);
      assert.equal(d.trigger, 'sync');
      assert.equal(d.status, 'succeeded');
      await until(() => settled(env), `${env} Synced and Healthy`, 30_000);
      const instances = (await live(env)).instances;
      assert.ok(instances.length > 0);
      for (const i of instances) assert.deepEqual([i.release, i.env.GREETING], [agent.deployer.liveRelease(env)!.number, 'from-git']);
    }
    assert.ok((await serviceOf('swarm-healed')).Spec.TaskTemplate.ContainerSpec.Env.includes('GREETING=from-git'));
    // Applying what git says commits nothing more.
    assert.match(repo.git('log', '-1', '--format=%s', 'conveyor/state'), /^Say hello from git/);
  });

  it('the environment status shows each with its runtime, live release, health and sync', async () => {
    await until(() => ENVIRONMENTS.every(settled), 'all four Synced and Healthy', 60_000);
    const status = new Map((await agent.deployer.status()).map((e): [string, EnvironmentStatus] => [e.name, e]));
    for (const env of ENVIRONMENTS) {
      const s = status.get(env);
      assert.ok(s, env);
      assert.equal(s.runtime, env.startsWith('kube') ? 'kubernetes' : 'swarm', env);
      assert.equal(s.health, 'Healthy', env);
      assert.equal(s.sync?.sync, 'Synced', env);
      assert.equal(s.live?.number, agent.deployer.liveRelease(env)!.number, env);
      assert.equal(s.live?.artifact.digest, image.digest, env);
    }
  });

  it('the public port the agent allocates for an environment is held from then on', async () => {
    const config = agent.deployer.environments().find((e) => e.name === 'swarm-reported')!;
    const port = await agent.runtimes.publicPort({ ...config, name: 'swarm-later' });
    const taken = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(true));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(false)));
    });
    assert.ok(taken, `127.0.0.1:${port}, allocated for swarm-later, is free for another program to take`);
  });

  it('an agent stopped during a deploy to kubernetes ends the deployment without an error; the next start records it as failed', async () => {
    const other = new TempRepo({
      'conveyor.yml': CONFIG(`{ kubeconfig: "${cluster.kubeconfigPath}", namespace: ${cluster.uniqueNamespace('stopped')} }`).replace(/timeout: 30s/g, 'timeout: 2s'),
    });
    let a: Agent | undefined = await startAgent(other, { pollMs: 200 });
    try {
      // No kubelet serves this namespace: the rollout waits until the health check's time runs out.
      const r = a.deployer.deploy({ environment: 'kube-reported', artifact: { kind: 'image', repository, digest: image.digest }, runId: null, stage: null, commit: null, requestedBy: 'tester (test)' }, 'manual');
      assert.ok(r.ok, r.ok ? '' : r.error.error);
      await until(() => a!.store.deployments('kube-reported', 1)[0]?.status === 'running', 'the deployment running');
      await a.stop();
      await assert.doesNotReject(r.value.done);
      a = await startAgent(other, { pollMs: 200 });
      const [d] = a.store.deployments('kube-reported', 1);
      assert.equal(d.status, 'failed');
      assert.match(d.reason ?? '', /the agent stopped during this deployment/);
    } finally {
      await a?.stop();
      other.dispose();
    }
  });
});
