/** What a folder looks like, for a starter conveyor.yml that fits it. */
export interface ProjectFacts {
  name: string;
  /** package.json's scripts, when there is a package.json. */
  npmScripts?: Record<string, string>;
  lockfile?: 'npm' | 'yarn' | 'pnpm';
  files: Set<string>;
}

interface StarterStage {
  name: string;
  run: string;
  needs?: string[];
}

/** npm's placeholder test script, which always fails. */
const NPM_PLACEHOLDER_TEST = /no test specified/;

function nodeStages(facts: ProjectFacts): StarterStage[] {
  const scripts = facts.npmScripts ?? {};
  const install = facts.lockfile === 'yarn' ? 'yarn install --frozen-lockfile' : facts.lockfile === 'pnpm' ? 'pnpm install --frozen-lockfile' : facts.lockfile === 'npm' ? 'npm ci' : 'npm install';
  const runner = facts.lockfile === 'yarn' ? 'yarn' : facts.lockfile === 'pnpm' ? 'pnpm' : 'npm run';
  const stages: StarterStage[] = [{ name: 'install', run: install }];
  if (scripts.lint) stages.push({ name: 'lint', needs: ['install'], run: `${runner} lint` });
  if (scripts.build) stages.push({ name: 'build', needs: ['install'], run: `${runner} build` });
  const testNeeds = scripts.build ? ['build'] : ['install'];
  if (!scripts.test || !NPM_PLACEHOLDER_TEST.test(scripts.test)) {
    stages.push({ name: 'test', needs: testNeeds, run: facts.lockfile === 'yarn' ? 'yarn test' : facts.lockfile === 'pnpm' ? 'pnpm test' : 'npm test' });
  }
  return stages;
}

function stagesFor(facts: ProjectFacts): { stages: StarterStage[]; kind: string } {
  const has = (f: string) => facts.files.has(f);
  if (facts.npmScripts) return { stages: nodeStages(facts), kind: 'Node.js' };
  if (has('go.mod')) return { kind: 'Go', stages: [{ name: 'build', run: 'go build ./...' }, { name: 'test', needs: ['build'], run: 'go test ./...' }] };
  if (has('Cargo.toml')) return { kind: 'Rust', stages: [{ name: 'build', run: 'cargo build' }, { name: 'test', needs: ['build'], run: 'cargo test' }] };
  if (has('pyproject.toml') || has('requirements.txt') || has('setup.py')) return { kind: 'Python', stages: [{ name: 'test', run: 'python3 -m pytest' }] };
  if (has('Makefile')) return { kind: 'Make', stages: [{ name: 'build', run: 'make' }, { name: 'test', needs: ['build'], run: 'make test' }] };
  return { kind: '', stages: [{ name: 'build', run: 'echo "replace this with your build command"' }, { name: 'test', needs: ['build'], run: 'echo "replace this with your test command"' }] };
}

/** The text of a starter conveyor.yml for the project: a small pipeline that fits it, with comments. */
export function starterConfig(facts: ProjectFacts): string {
  const { stages, kind } = stagesFor(facts);
  const lines = [
    `# Conveyor pipeline${kind ? ` for this ${kind} project` : ''}.`,
    '# Each stage runs its commands in order in a clean snapshot of the commit; `needs` orders the stages.',
    '# Runs start on new commits and from the editor (Conveyor: Run Pipeline).',
    'pipeline:',
    '  stages:',
  ];
  for (const s of stages) {
    lines.push(`    - name: ${s.name}`);
    if (s.needs?.length) lines.push(`      needs: [${s.needs.join(', ')}]`);
    lines.push(`      run: ${yamlScalar(s.run)}`);
  }
  lines.push(
    '',
    '# Environments the pipeline delivers to, for example:',
    '# environments:',
    '#   staging: { runtime: process, promotion: auto }',
    '',
  );
  return lines.join('\n');
}

function yamlScalar(text: string): string {
  return /^[\w./ -]+$/.test(text) && !/^[-?:,[\]{}#&*!|>'"%@`]/.test(text) ? text : `'${text.replace(/'/g, "''")}'`;
}
