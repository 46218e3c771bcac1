// `npm run test:desktop`: the in-editor suite in a desktop VS Code, through @vscode/test-electron
// (2.5, which runs on Node 20), with a VS Code that is already installed: it cannot be downloaded
// on machines without internet access, so give its executable in VSCODE_EXECUTABLE, or have `code`
// on PATH. `npm test` runs the same suite offline in code-server.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

function findVSCode() {
  if (process.env.VSCODE_EXECUTABLE) return process.env.VSCODE_EXECUTABLE;
  try {
    const code = execFileSync('sh', ['-c', 'command -v code'], { encoding: 'utf8' }).trim();
    // `code` on PATH is a launcher script; the Electron binary sits two folders up.
    const real = fs.realpathSync(code);
    for (const candidate of [path.join(path.dirname(real), '..', '..', 'code'), path.join(path.dirname(real), '..', 'code'), real]) {
      if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
    }
  } catch {
    // no `code` on PATH
  }
  return undefined;
}

async function main() {
  const vscodeExecutablePath = findVSCode();
  if (!vscodeExecutablePath) {
    console.error('test:desktop: no desktop VS Code here. Set VSCODE_EXECUTABLE to its executable (e.g. /usr/share/code/code), or put `code` on PATH. (npm test runs this suite in code-server.)');
    process.exit(2);
  }
  const { runTests } = require('@vscode/test-electron');
  const { TempRepo, WORKSPACE_SETTINGS } = require(path.join(root, 'out/test/vscode/suite/repo.js'));
  const { SUITE_CONFIG } = require(path.join(root, 'out/test/vscode/suite-config.js'));
  const repo = new TempRepo({ 'conveyor.yml': SUITE_CONFIG, '.vscode/settings.json': WORKSPACE_SETTINGS, 'README.md': '# demo\n' }, 'initial commit');
  try {
    await runTests({
      vscodeExecutablePath,
      extensionDevelopmentPath: root,
      extensionTestsPath: path.join(root, 'out/test/vscode/suite/index.js'),
      launchArgs: [repo.dir, '--disable-extensions', '--disable-workspace-trust'],
    });
    console.log('\n1 passed, 0 failed');
  } finally {
    repo.dispose();
  }
}

main().catch((e) => {
  console.error(`test:desktop: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
