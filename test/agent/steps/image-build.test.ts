import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import Docker from 'dockerode';
import { ensureLocalRegistry, probeRegistry } from '../../../agent/runtimes/registry';
import { buildImage, DockerignoreMatcher, imageLabels, parseDockerignore, type BuildImageOptions } from '../../../agent/steps/image-build';
import {
  copyFixture,
  dockerCli,
  dockerClient,
  freePort,
  removeByLabel,
  requireDocker,
  TEST_LABEL,
  testRunLabel,
  uniqueRepository,
} from '../../support/docker';

describe('image build (real dockerd, real registry)', function () {
  const docker = dockerClient();
  const label = testRunLabel('image-build');
  const dirs: string[] = [];
  const tmp = (name: string) => {
    const d = copyFixture(name);
    dirs.push(d);
    return d;
  };
  const build = (o: Partial<BuildImageOptions> & Pick<BuildImageOptions, 'contextDir' | 'repository'>) =>
    buildImage({ tag: '1', docker, ...o, labels: { ...o.labels, [TEST_LABEL]: label } });

  before(async () => {
    await requireDocker(docker);
  });

  after(async () => {
    await removeByLabel(docker, label);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('builds from a context, pushes, and the recorded digest pulls the same image', async () => {
    const dir = tmp('httpd');
    // Files the .dockerignore leaves out, and one it takes back.
    fs.writeFileSync(path.join(dir, 'www', 'debug.log'), 'noise\n');
    fs.writeFileSync(path.join(dir, 'build.log'), 'noise\n');
    fs.mkdirSync(path.join(dir, 'www', 'drafts'));
    fs.writeFileSync(path.join(dir, 'www', 'drafts', 'draft.html'), 'draft\n');
    fs.writeFileSync(path.join(dir, 'www', 'drafts', 'keep.html'), 'keep\n');
    const repository = uniqueRepository('httpd');
    const lines: string[] = [];
    const r = await build({
      contextDir: dir,
      repository,
      tag: 'run-7',
      labels: imageLabels({ commit: 'a'.repeat(40), runId: 7, pipeline: 'main' }),
      onLog: (l) => lines.push(l),
    });
    assert.ok(r.ok, r.ok ? '' : `${r.error.reason}\n${r.error.log}`);
    const { digest, imageId, tag } = r.value;
    assert.equal(tag, 'run-7');
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    assert.match(imageId, /^sha256:[0-9a-f]{64}$/);

    // The log came line by line: each Dockerfile step, then the push.
    assert.ok(lines.some((l) => /^Step 1\/\d+ : FROM conveyor-test\/busybox:1$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => l.startsWith('Successfully built')), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes(`digest: ${digest}`)), lines.join('\n'));
    assert.ok(lines.every((l) => !l.includes('\n')));

    // The digest is the registry's own name for the manifest.
    const name = repository.slice(repository.indexOf('/') + 1);
    const registryDigest = await new Promise<string | undefined>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: Number(repository.split('/')[0].split(':')[1]),
          method: 'HEAD',
          path: `/v2/${name}/manifests/run-7`,
          headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
        },
        (res) => {
          res.resume();
          resolve(res.headers['docker-content-digest'] as string | undefined);
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(registryDigest, digest);

    // The labels of the run are on the image.
    const info = await docker.getImage(imageId).inspect();
    assert.equal(info.Config.Labels['conveyor.commit'], 'a'.repeat(40));
    assert.equal(info.Config.Labels['conveyor.run'], '7');
    assert.equal(info.Config.Labels['conveyor.pipeline'], 'main');

    // Forget the local image, then pull it by digest as a deploy does.
    await dockerCli('rmi', '-f', imageId);
    await dockerCli('pull', `${repository}@${digest}`);
    const listing = await dockerCli('run', '--rm', '--label', `${TEST_LABEL}=${label}`, `${repository}@${digest}`, 'find', '/www');
    const files = listing.trim().split('\n').sort();
    assert.deepEqual(files, ['/www', '/www/drafts', '/www/drafts/keep.html', '/www/healthz', '/www/index.html', '/www/version']);
  });

  it('the same commit built from another checkout gives the same digest', async () => {
    const repository = uniqueRepository('same');
    const a = await build({ contextDir: tmp('httpd'), repository, tag: 'a' });
    const b = await build({ contextDir: tmp('httpd'), repository, tag: 'b' });
    assert.ok(a.ok && b.ok);
    assert.equal(a.value.digest, b.value.digest);
    const c = await build({ contextDir: tmp('httpd'), repository, tag: 'c', buildArgs: { VERSION: '2' } });
    assert.ok(c.ok);
    assert.notEqual(c.value.digest, a.value.digest);
  });

  it('a failing build returns its log and pushes nothing', async () => {
    const repository = uniqueRepository('failing');
    const lines: string[] = [];
    const r = await build({ contextDir: tmp('failing'), repository, onLog: (l) => lines.push(l) });
    assert.ok(!r.ok);
    assert.match(r.error.reason, /^the build failed: .*returned a non-zero code: 3/);
    assert.match(r.error.log, /Step 2\/\d+ : RUN echo "preparing the build"/);
    assert.match(r.error.log, /about to fail/);
    assert.ok(lines.includes('about to fail'), lines.join('\n'));
    const tags = await probeTags(repository);
    assert.equal(tags, 404);
  });

  it('cancel stops the build and its container', async () => {
    const dir = tmp('httpd');
    const marker = `slow-${process.pid}-${Date.now()}`;
    fs.writeFileSync(path.join(dir, 'Dockerfile'), `FROM conveyor-test/busybox:1\nRUN echo ${marker} && sleep 300\n`);
    const ac = new AbortController();
    const r = await build({
      contextDir: dir,
      repository: uniqueRepository('slow'),
      signal: ac.signal,
      onLog: (l) => {
        if (l === marker) ac.abort();
      },
    });
    assert.ok(!r.ok);
    assert.equal(r.error.reason, 'cancelled');
    assert.match(r.error.log, new RegExp(marker));
    // The daemon cancels the build when the request goes: its RUN container goes too.
    await until(async () => !(await dockerCli('ps', '-a', '--no-trunc', '--format', '{{.Command}}')).includes(marker), 'the build container to go');
  });

  it('Docker not running: a clear error that says how to start it', async () => {
    const nowhere = new Docker({ socketPath: path.join(os.tmpdir(), 'conveyor-no-such-docker.sock') });
    const r = await buildImage({ contextDir: tmp('httpd'), repository: uniqueRepository('x'), tag: '1', docker: nowhere });
    assert.ok(!r.ok);
    assert.match(r.error.reason, /^Cannot connect to the Docker daemon at unix:\/\/\/.*conveyor-no-such-docker\.sock: start dockerd \(/);
  });

  it('the registry down: says so before building', async () => {
    const port = await freePort();
    const lines: string[] = [];
    const r = await build({ contextDir: tmp('httpd'), repository: `127.0.0.1:${port}/nothing`, onLog: (l) => lines.push(l) });
    assert.ok(!r.ok);
    assert.match(r.error.reason, new RegExp(`^the registry at 127\\.0\\.0\\.1:${port} is unreachable: ECONNREFUSED; start one with`));
    assert.deepEqual(lines, []);
  });

  describe('ensureLocalRegistry', () => {
    let pid: number | null = null;
    let stateDir = '';

    after(() => {
      if (pid) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // gone
        }
      }
      if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
    });

    it('finds the running registry and starts none', async () => {
      const r = await ensureLocalRegistry({ stateDir: os.tmpdir() });
      assert.ok(r.ok, r.ok ? '' : r.error);
      assert.deepEqual(r.value, { address: '127.0.0.1:5000', started: false, pid: null });
    });

    it('starts one when nothing answers, and images push to it', async () => {
      stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-registry-'));
      const address = `127.0.0.1:${await freePort()}`;
      const r = await ensureLocalRegistry({ address, stateDir });
      assert.ok(r.ok, r.ok ? '' : r.error);
      pid = r.value.pid;
      assert.equal(r.value.started, true);
      assert.ok(pid);
      assert.ok((await probeRegistry(address)).ok);
      const again = await ensureLocalRegistry({ address, stateDir });
      assert.ok(again.ok && !again.value.started);

      const built = await build({ contextDir: tmp('httpd'), repository: `${address}/own` });
      assert.ok(built.ok, built.ok ? '' : built.error.reason);
      assert.ok(fs.readdirSync(path.join(stateDir, 'registry', 'storage')).length > 0);
    });

    it('asked not to start one: a clear error', async () => {
      const address = `127.0.0.1:${await freePort()}`;
      const r = await ensureLocalRegistry({ address, stateDir: os.tmpdir(), start: false });
      assert.ok(!r.ok);
      assert.match(r.error, new RegExp(`^the registry at ${address.replace(/\./g, '\\.')} is unreachable: ECONNREFUSED; start one with \`docker-registry serve CONFIG\``));
    });
  });
});

describe('.dockerignore rules', () => {
  const m = (lines: string) => new DockerignoreMatcher(parseDockerignore(lines));

  it('anchors patterns at the root; ** crosses folders; a folder excludes what it holds', () => {
    const x = m('*.log\n/build\nnode_modules\n**/*.tmp\ndocs/**/draft-?.md\n# comment\n\n');
    assert.ok(x.matches('a.log'));
    assert.ok(!x.matches('sub/a.log'));
    assert.ok(x.matches('build/out/x.js'));
    assert.ok(x.matches('node_modules/a/index.js'));
    assert.ok(!x.matches('src/node_modules/a.js'));
    assert.ok(x.matches('x.tmp') && x.matches('a/b/c.tmp'));
    assert.ok(x.matches('docs/draft-1.md') && x.matches('docs/a/b/draft-2.md'));
    assert.ok(!x.matches('docs/draft-10.md'));
    assert.ok(!x.matches('src/index.ts'));
  });

  it('! takes files back; the last match wins', () => {
    const x = m('www/drafts\n!www/drafts/keep.html\n*.md\n!README.md\n');
    assert.ok(x.matches('www/drafts/a.html'));
    assert.ok(!x.matches('www/drafts/keep.html'));
    assert.ok(x.mayIncludeUnder('www/drafts'));
    assert.ok(!x.mayIncludeUnder('other'));
    assert.ok(x.matches('CHANGES.md') && !x.matches('README.md'));
  });
});

async function probeTags(repository: string): Promise<number> {
  const [registry, ...rest] = repository.split('/');
  return new Promise((resolve, reject) => {
    http
      .get(`http://${registry}/v2/${rest.join('/')}/tags/list`, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

async function until(fn: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
