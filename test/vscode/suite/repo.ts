/**
 * A temporary git repository for the VS Code tests (outside and inside the extension host).
 * Like test/support/fixtures.ts's TempRepo, but loads nothing of the agent: these tests drive
 * the built agent (dist/cli.js) through the extension only.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export class TempRepo {
  readonly dir: string;

  constructor(files: Record<string, string>, message = 'initial commit') {
    this.dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-test-')));
    this.git('init', '-q', '-b', 'main');
    this.git('config', 'user.email', 'test@example.com');
    this.git('config', 'user.name', 'Test');
    this.git('config', 'commit.gpgsign', 'false');
    for (const [name, text] of Object.entries(files)) {
      const file = path.join(this.dir, name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
    }
    this.git('add', '-A');
    this.git('commit', '-q', '--allow-empty', '-m', message);
  }

  git(...args: string[]): string {
    return execFileSync('git', args, { cwd: this.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A conveyor.yml from stages written as YAML list items. */
export function pipelineYaml(stages: string): string {
  const body = stages
    .trim()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
  return `pipeline:\n  maxParallel: 4\n  stages:\n${body}\n`;
}

/** Settings of the test workspaces: runs start only when asked. */
export const WORKSPACE_SETTINGS = JSON.stringify({ 'conveyor.runOnCommit': false }, null, 2);
