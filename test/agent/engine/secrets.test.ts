import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Agent } from '../../../agent/agent';
import { Masker, MASK, resolveSecrets } from '../../../agent/engine/secrets';
import { eventsOf, finished, pipelineYaml, startAgent, startRun, TempRepo } from '../../support/fixtures';

describe('secrets', function () {
  this.timeout(60_000);

  describe('Masker', () => {
    it('masks a value split across chunks at every possible cut', () => {
      const secret = 's3cr3t-Value!';
      const text = `before ${secret} middle ${secret}${secret} after`;
      for (let cut = 0; cut <= text.length; cut++) {
        for (let cut2 = cut; cut2 <= text.length; cut2 += 3) {
          const m = new Masker([secret]);
          const out = m.push(text.slice(0, cut)) + m.push(text.slice(cut, cut2)) + m.push(text.slice(cut2)) + m.end();
          assert.equal(out, `before ${MASK} middle ${MASK}${MASK} after`, `cuts at ${cut}, ${cut2}`);
        }
      }
    });

    it('masks the base64, URL and JSON forms', () => {
      const secret = 'p@ss "word"/x';
      const m = new Masker([secret]);
      const forms = [Buffer.from(secret).toString('base64'), encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)];
      for (const f of forms) assert.equal(m.mask(`[${f}]`), `[${MASK}]`, f);
    });

    it('keeps the streams of forks apart: what one holds back never comes out of another', () => {
      const secret = 'hunter2-correct-horse';
      const shared = new Masker([secret]);
      const a = shared.fork();
      const b = shared.fork();
      let outA = a.push('key=hunter2');
      let outB = b.push('chatter 1\n');
      outA += a.push('-correct');
      outB += b.push('chatter 2\n') + b.end();
      outA += a.push('-horse\n') + a.end();
      assert.equal(outA, `key=${MASK}\n`);
      assert.equal(outB, 'chatter 1\nchatter 2\n');
    });

    it('lets text through at once unless its end could begin a form', () => {
      const m = new Masker(['hunter2-correct-horse']);
      assert.equal(m.push('listening on 8080\n'), 'listening on 8080\n');
      assert.equal(m.push('token: hun'), 'token: ');
      assert.equal(m.push('gry\n'), 'hungry\n');
      assert.equal(m.end(), '');
    });

    it('masks base64 wrapped over lines (\\n or \\r\\n) at every cut of the stream', () => {
      const secret = 'ghp_' + 'Zq8LmW3vRt5yXb7NcK2pHs9dFj4gTa6e'.repeat(2);
      const encoded = Buffer.from(secret).toString('base64');
      for (const eol of ['\n', '\r\n']) {
        // As `base64` prints it: 76 columns, then a line break.
        const text = `before\n${encoded.replace(/.{76}/g, `$&${eol}`)}${eol}after${eol}`;
        const want = `before\n${MASK}${eol}after${eol}`;
        assert.equal(new Masker([secret]).mask(text), want);
        for (let cut = 0; cut <= text.length; cut++) {
          const m = new Masker([secret]);
          assert.equal(m.push(text.slice(0, cut)) + m.push(text.slice(cut)) + m.end(), want, `cut at ${cut}`);
        }
      }
    });

    it("masks a value's base64 inside a longer encoding, whatever its offset in a 3-byte group", () => {
      const secret = 'hunter2-correct-horse-battery';
      const m = new Masker([secret]);
      for (const before of ['', 'u:', 'ci-user:', 'x', 'xy']) {
        for (const after of ['', '\n', '@host', 'z']) {
          const encoded = Buffer.from(before + secret + after).toString('base64');
          const masked = m.mask(`Authorization: Basic ${encoded}`);
          // The 4-character groups that encode the value's bytes alone.
          const offset = before.length;
          const inner = encoded.slice(4 * Math.ceil(offset / 3), 4 * Math.floor((offset + secret.length) / 3));
          assert.ok(masked.includes(MASK), `${before}|${after}: ${masked}`);
          assert.ok(!masked.includes(inner.slice(0, 8)) && !masked.includes(inner.slice(-8)), `${before}|${after}: ${masked}`);
        }
      }
    });

    it('masks a long multi-line value (a PEM key) and its wrapped base64', () => {
      const body = Buffer.from(Array.from({ length: 1200 }, (_, i) => (i * 37) % 256)).toString('base64');
      const pem = `-----BEGIN PRIVATE KEY-----\n${body.replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`;
      const m = new Masker([pem]);
      const wrapped = Buffer.from(pem).toString('base64').replace(/.{76}/g, '$&\n');
      assert.equal(m.mask(`key: ${pem}!`), `key: ${MASK}!`);
      assert.equal(m.mask(`${wrapped}\n`), `${MASK}\n`);
      const s = m.fork();
      let out = '';
      for (let i = 0; i < pem.length; i += 100) out += s.push(pem.slice(i, i + 100));
      assert.equal(out + s.end(), MASK);
    });

    it('masks in a process of its own with relay(), as push and end do', () => {
      const secret = 'hunter2-correct-horse';
      const relay = new Masker([secret]).relay()!;
      const input = `plain ${secret}\n${Buffer.from(secret).toString('base64')}\nlast`;
      const out = execFileSync(process.execPath, ['-e', relay.script], { input, env: relay.env, encoding: 'utf8' });
      assert.equal(out, `plain ${MASK}\n${MASK}\nlast`);
      assert.equal(new Masker(['ab']).relay(), null);
    });

    it('leaves very short values alone and passes text through when there is nothing to mask', () => {
      const m = new Masker(['ab', '']);
      assert.equal(m.active, false);
      assert.equal(m.push('ab ab'), 'ab ab');
    });
  });

  it('reads values from the environment first, then from .conveyor/secrets.env', () => {
    const repo = new TempRepo();
    try {
      fs.mkdirSync(repo.path('.conveyor'));
      fs.writeFileSync(repo.path('.conveyor', 'secrets.env'), '# comment\nA=from-file\nexport B="quoted value"\n');
      const r = resolveSecrets(['A', 'B', 'C'], repo.dir, { A: 'from-env' });
      assert.deepEqual([...r.values], [
        ['A', 'from-env'],
        ['B', 'quoted value'],
      ]);
      assert.deepEqual(r.missing, ['C']);
    } finally {
      repo.dispose();
    }
  });

  describe('in a pipeline', () => {
    let repo: TempRepo;
    let agent: Agent;
    const SECRET = 'hunter2-correct-horse';
    const FILE_SECRET = 'from-the-secrets-file-42';

    before(async () => {
      repo = new TempRepo({
        'conveyor.yml': pipelineYaml(
          `
- name: leak
  run:
    - echo "plain $API_KEY"
    - printf '%s' "$API_KEY" | base64
    - node -e "process.stdout.write(encodeURIComponent(process.env.API_KEY)); console.error(JSON.stringify([process.env.API_KEY]))"
    - s="$API_KEY"; printf '%s' "\${s%%-*}"; sleep 0.2; printf '%s\\n' "-\${s#*-}"
    - echo "file secret $FILE_KEY"; exit 1
`,
          'secrets: [API_KEY, FILE_KEY]\n',
        ),
      });
      fs.mkdirSync(repo.path('.conveyor'), { recursive: true });
      fs.writeFileSync(repo.path('.conveyor', 'secrets.env'), `FILE_KEY=${FILE_SECRET}\n`);
      agent = await startAgent(repo, { env: { ...process.env, API_KEY: SECRET } });
    });

    after(async () => {
      await agent.stop();
      repo.dispose();
    });

    it('never lets a value reach a log file, an event or the database', async () => {
      const run = await finished(agent, await startRun(agent, { trigger: 'manual' }));
      assert.equal(run.status, 'failed');
      const events = JSON.stringify(eventsOf(agent));
      const logDir = repo.path('.conveyor', 'logs', String(run.id));
      const logs = fs
        .readdirSync(logDir, { recursive: true, withFileTypes: true })
        .filter((d) => d.isFile())
        .map((d) => fs.readFileSync(path.join(d.parentPath ?? d.path, d.name), 'utf8'))
        .join('\n');
      assert.match(logs, /plain \*\*\*/);
      assert.match(logs, /file secret \*\*\*/);
      for (const secret of [SECRET, FILE_SECRET]) {
        const forms = [secret, Buffer.from(secret).toString('base64'), encodeURIComponent(secret)];
        for (const form of forms) {
          assert.ok(!logs.includes(form), `log holds ${form}`);
          assert.ok(!events.includes(form), `events hold ${form}`);
        }
      }
      // The split print still shows neither half joined into the value.
      assert.ok(!logs.replace(/\n/g, '').includes(SECRET));
      agent.store.flush();
      for (const f of ['history.db', 'history.db-wal']) {
        const file = repo.path('.conveyor', f);
        if (fs.existsSync(file)) assert.ok(!fs.readFileSync(file).includes(Buffer.from(SECRET)), `${f} holds the secret`);
      }
    });
  });
});
