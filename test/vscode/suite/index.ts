/**
 * Entry of the suite that runs INSIDE the VS Code extension host (extensionTestsPath): runs
 * mocha over the *.spec.js files beside it. CONVEYOR_SUITE_GREP narrows it to matching tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function run(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require('mocha') as typeof import('mocha') & { default?: typeof import('mocha') };
  const Mocha = mod.default ?? mod;
  const mocha = new Mocha({ ui: 'bdd', reporter: 'spec', color: false, timeout: 120_000, grep: process.env.CONVEYOR_SUITE_GREP || undefined });
  for (const file of fs.readdirSync(__dirname).sort()) {
    if (file.endsWith('.spec.js')) mocha.addFile(path.join(__dirname, file));
  }
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures ? reject(new Error(`${failures} test(s) failed`)) : resolve()));
  });
}
