import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Agent } from '../../agent/agent';
import type { ConfigState, Diagnostic, RunSummary } from '../../agent/protocol';
import { pipelineYaml, startAgent, TempRepo, until } from '../support/fixtures';
import { configCorpus, mutateConfig, type CorpusEntry } from './configMutations';
import type { FuzzCase, FuzzVerdict } from './configFuzzWorker';
import { info, recordFigures, zero } from './figures';
import { apiErrorOf, rawRequest } from './http';
import { Random, scaled, seedOf } from './mode';

/** The longest one analysis may take before it counts as a hang: a bound, not a measurement. */
const HANG_MS = 10_000;

/** Runs analyses in a worker thread, so that a hang is seen (and the worker replaced) instead of blocking the suite. */
class BoundedAnalyzer {
  private pending: { resolve: (v: FuzzVerdict | 'hang') => void; reject: (e: Error) => void } | undefined;
  private worker = this.spawn();

  private spawn(): Worker {
    const worker = new Worker(path.join(__dirname, 'configFuzzWorker.js'));
    worker.on('message', (v: FuzzVerdict) => this.settle((p) => p.resolve(v)));
    worker.on('error', (e) => this.settle((p) => p.reject(e)));
    return worker;
  }

  private settle(how: (p: NonNullable<BoundedAnalyzer['pending']>) => void): void {
    const p = this.pending;
    this.pending = undefined;
    if (p) how(p);
  }

  /** The verdict, or 'hang' when the analysis did not end within HANG_MS. */
  judge(c: FuzzCase): Promise<FuzzVerdict | 'hang'> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        void this.worker.terminate();
        this.worker = this.spawn();
        resolve('hang');
      }, HANG_MS);
      this.pending = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.worker.postMessage(c);
    });
  }

  async dispose(): Promise<void> {
    await this.worker.terminate();
  }
}

describe('reliability: config fuzz (mutated conveyor.yml files)', function () {
  const CASES = scaled(2000, 10_000);
  const SAMPLE = scaled(20, 100);
  this.timeout(scaled(120_000, 900_000));
  const suite = 'Config fuzz';
  let corpus: CorpusEntry[];
  /** Rejected configs kept for the agent to refuse (a reservoir sample). */
  const rejected: string[] = [];

  before(() => {
    corpus = configCorpus();
  });

  it(`analyzes ${CASES.toLocaleString('en-US')} mutated configs: no crash, no hang, every rejection at a line and column`, async () => {
    // The corpus must be worth mutating: examples, fixtures, README snippets and test literals.
    assert.ok(corpus.length >= 8, `only ${corpus.length} valid configs in the corpus: ${corpus.map((c) => c.source).join(', ')}`);
    const rnd = new Random(seedOf('config-fuzz'));
    console.log(`      seed ${rnd.seed}, ${corpus.length} valid configs from ${new Set(corpus.map((c) => c.source.split(' ')[0])).size} sources`);
    const analyzer = new BoundedAnalyzer();
    const problems: string[] = [];
    let crashed = 0;
    let hung = 0;
    let unplaced = 0;
    let invalid = 0;
    try {
      for (let i = 0; i < CASES; i++) {
        const text = mutateConfig(rnd.pick(corpus).text, rnd);
        const v = await analyzer.judge({ id: i, text });
        const show = () => `case ${i} (seed ${rnd.seed}):\n${text.slice(0, 2000)}`;
        if (v === 'hang') {
          hung++;
          problems.push(`hang: ${show()}`);
          continue;
        }
        if (v.crashed) {
          crashed++;
          problems.push(`internal failure: ${show()}`);
        }
        if (v.unplaced.length) {
          unplaced++;
          problems.push(`${v.unplaced.join('; ')}: ${show()}`);
        }
        if (!v.valid) {
          invalid++;
          if (rejected.length < SAMPLE) rejected.push(text);
          else if (rnd.chance(SAMPLE / invalid)) rejected[rnd.int(0, SAMPLE - 1)] = text;
        }
      }
    } finally {
      await analyzer.dispose();
    }
    recordFigures([
      info(suite, 'mutated configs analyzed', `${CASES.toLocaleString('en-US')} (${invalid.toLocaleString('en-US')} rejected) from ${corpus.length} valid ones`),
      zero(suite, 'analyzer crashes', crashed),
      zero(suite, `hangs (an analysis over ${HANG_MS / 1000} s)`, hung),
      zero(suite, 'rejections without a line and column', unplaced),
    ]);
    assert.deepEqual(problems.slice(0, 5), [], `${problems.length} problems`);
    // The mutations must break configs, or the suite proves nothing.
    assert.ok(invalid > CASES / 4, `only ${invalid} of ${CASES} mutated configs were rejected`);
  });

  it('a rejected config starts no run: the agent answers 4xx with the diagnostics', async () => {
    assert.ok(rejected.length > 0, 'the fuzz kept rejected configs');
    const repo = new TempRepo({ 'conveyor.yml': pipelineYaml('- name: ok\n  run: echo ok') });
    let agent: Agent | undefined;
    let created = 0;
    let undiagnosed = 0;
    const problems: string[] = [];
    try {
      agent = await startAgent(repo);
      const port = agent.port;
      const headers = { authorization: `Bearer ${agent.discovery.token}`, 'content-type': 'application/json' };
      const call = (method: string, route: string, body?: unknown) => rawRequest({ port, method, path: `/api${route}`, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const runsBefore = (JSON.parse((await call('GET', '/runs?limit=500')).body) as RunSummary[]).length;
      for (const [i, text] of rejected.entries()) {
        repo.write({ 'conveyor.yml': text });
        repo.commit(`rejected config ${i}`);
        // The working tree's config, once the agent has read it, and the committed one.
        const validated = JSON.parse((await call('POST', '/validate', { text })).body) as { diagnostics: Diagnostic[] };
        await until(async () => {
          const state = JSON.parse((await call('GET', '/config')).body) as ConfigState;
          return !state.valid && JSON.stringify(state.diagnostics.map((d) => d.message)) === JSON.stringify(validated.diagnostics.map((d) => d.message));
        }, `the agent to read rejected config ${i}`);
        for (const body of [{}, { workingTree: true }]) {
          const answer = await call('POST', '/runs', body);
          const e = apiErrorOf(answer) as { error: string; diagnostics?: Diagnostic[] } | undefined;
          if (answer.status < 400 || answer.status >= 500) {
            problems.push(`POST /api/runs ${JSON.stringify(body)} answered ${answer.status} for:\n${text.slice(0, 1000)}`);
          } else if (!e?.diagnostics?.length || !e.diagnostics.every((d) => d.range.start.line >= 1 && d.range.start.column >= 1)) {
            undiagnosed++;
            problems.push(`POST /api/runs ${JSON.stringify(body)} answered ${answer.status} without placed diagnostics: ${answer.body.slice(0, 300)}`);
          }
        }
      }
      const runsAfter = (JSON.parse((await call('GET', '/runs?limit=500')).body) as RunSummary[]).length;
      created = runsAfter - runsBefore;
    } finally {
      await agent?.stop();
      repo.dispose();
    }
    recordFigures([
      info(suite, 'rejected configs given to a real agent', `${rejected.length} (committed, and in the working tree)`),
      zero(suite, 'runs started from a rejected config', created),
      zero(suite, 'refusals without diagnostics at a line and column', undiagnosed),
    ]);
    assert.deepEqual(problems, []);
    assert.equal(created, 0);
  });
});
