import * as assert from 'node:assert/strict';
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
