import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dependencyKeys, jsonErrorOffset, lineColumn, parseJson } from '../../agent/scan/json';
import { readLockfile, type InstalledPackage } from '../../agent/scan/lockfile';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/scan');

/** The tree every fixture project installs: express 4.16.0 with its own qs and a nested older one under body-parser. */
const SHOP: InstalledPackage[] = [
  { name: '@acme/widgets', version: '2.0.0-beta.2', via: ['@acme/widgets'], declaredIn: 'package.json' },
  { name: 'body-parser', version: '1.18.2', via: ['express', 'body-parser'], declaredIn: 'package.json' },
  { name: 'express', version: '4.16.0', via: ['express'], declaredIn: 'package.json' },
  { name: 'left-pad', version: '1.3.0', via: ['left-pad'], declaredIn: 'package.json' },
  { name: 'lodash', version: '4.17.21', via: ['express', 'body-parser', 'lodash'], declaredIn: 'package.json' },
  { name: 'minimist', version: '1.2.5', via: ['minimist'], declaredIn: 'package.json' },
  { name: 'qs', version: '6.5.1', via: ['express', 'body-parser', 'qs'], declaredIn: 'package.json' },
  { name: 'qs', version: '6.5.2', via: ['express', 'qs'], declaredIn: 'package.json' },
];

describe('lockfiles', () => {
  const temps: string[] = [];
  const temp = (files: Record<string, string>) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-scan-'));
    temps.push(dir);
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    return dir;
  };
  after(() => {
    for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
  });

  for (const [folder, file] of [
    ['v1', 'package-lock.json'],
    ['v2', 'package-lock.json'],
    ['yarn', 'yarn.lock'],
  ]) {
    it(`reads every installed version with its chain: ${folder}/${file}`, async () => {
      const r = await readLockfile(path.join(FIXTURES, folder), file);
      assert.ok(r.ok, r.ok ? '' : r.error);
      assert.equal(r.value.file, file);
      assert.deepEqual(r.value.packages, SHOP);
    });
  }

  it('reads lockfile version 3 with a workspace, a nested install and an alias', async () => {
    const r = await readLockfile(path.join(FIXTURES, 'v3'), 'package-lock.json');
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.deepEqual(r.value.packages, [
      { name: 'body-parser', version: '1.18.2', via: ['express', 'body-parser'], declaredIn: 'package.json' },
      { name: 'express', version: '4.16.0', via: ['express'], declaredIn: 'package.json' },
      // Declared by the workspace, not the project.
      { name: 'left-pad', version: '1.3.0', via: ['left-pad'], declaredIn: 'packages/admin/package.json' },
      { name: 'minimist', version: '1.2.5', via: ['minimist'], declaredIn: 'packages/admin/package.json' },
      { name: 'qs', version: '6.5.1', via: ['express', 'body-parser', 'qs'], declaredIn: 'package.json' },
      { name: 'qs', version: '6.5.2', via: ['express', 'qs'], declaredIn: 'package.json' },
      // Installed under an alias and needed by nothing: scanned by its real name.
      { name: 'string-width', version: '4.2.3', via: ['string-width'], declaredIn: null },
    ]);
  });

  it('gives paths relative to the scan folder for a lockfile below it', async () => {
    const r = await readLockfile(FIXTURES, 'v2/package-lock.json');
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.equal(r.value.file, 'v2/package-lock.json');
    assert.ok(r.value.packages.every((p) => p.declaredIn === 'v2/package.json'));
  });

  it('reads a version 1 lockfile without package.json: its top-level packages are the direct ones', async () => {
    const dir = temp({ 'package-lock.json': fs.readFileSync(path.join(FIXTURES, 'v1', 'package-lock.json'), 'utf8') });
    const r = await readLockfile(dir, 'package-lock.json');
    assert.ok(r.ok, r.ok ? '' : r.error);
    const qs = r.value.packages.find((p) => p.name === 'qs' && p.version === '6.5.1');
    assert.deepEqual(qs, { name: 'qs', version: '6.5.1', via: ['body-parser', 'qs'], declaredIn: null });
  });

  it('says which file is missing and how to make it', async () => {
    const r = await readLockfile(FIXTURES, 'nowhere/package-lock.json');
    assert.ok(!r.ok);
    assert.match(r.error, /^nowhere\/package-lock\.json does not exist; run "npm install"/);
  });

  it('names the file, line and column of a JSON error', async () => {
    const r = await readLockfile(path.join(FIXTURES, 'broken'), 'package-lock.json');
    assert.ok(!r.ok);
    // Line 6 starts the entry after the one missing its comma.
    assert.equal(r.error, `package-lock.json:6:5: not valid JSON: Expected ',' or '}' after property value`);
  });

  it('places errors JSON.parse gives no position for', async () => {
    const dir = temp({ 'package-lock.json': '{\n  "lockfileVersion": 3,\n  "packages": { "": tru }\n}\n' });
    const r = await readLockfile(dir, 'package-lock.json');
    assert.ok(!r.ok);
    assert.match(r.error, /^package-lock\.json:3:21: not valid JSON: Unexpected token/);
  });

  it('refuses JSON that is not a lockfile, and Yarn 2 lockfiles, and says why', async () => {
    const dir = temp({ 'package-lock.json': '{ "name": "x" }', 'yarn.lock': '# This file is generated\n\n__metadata:\n  version: 6\n' });
    const npm = await readLockfile(dir, 'package-lock.json');
    assert.ok(!npm.ok);
    assert.match(npm.error, /^package-lock\.json:1:1: not a package-lock\.json: it has neither "packages"/);
    const yarn = await readLockfile(dir, 'yarn.lock');
    assert.ok(!yarn.ok);
    assert.match(yarn.error, /^yarn\.lock:3:1: this yarn\.lock is Yarn 2 or later's format/);
  });

  it('names the line of a yarn.lock line it cannot read', async () => {
    const dir = temp({ 'yarn.lock': '# yarn lockfile v1\n\nqs@6.5.2:\n  version "6.5.2"\nnot a block\n' });
    const r = await readLockfile(dir, 'yarn.lock');
    assert.ok(!r.ok);
    assert.match(r.error, /^yarn\.lock:5:1: not a Yarn 1 lockfile line/);
  });
});

describe('JSON positions', () => {
  it('finds the offset JSON.parse reports, where it reports one', () => {
    const broken = ['{\n "a": 1,\n}', '{\n "a": 1', '{"a":1}x', '{"a": 01}', '{"a": "\\q"}', '[1 2]', '{"a" 1}', '{"a":\n"x\ny"}'];
    let compared = 0;
    for (const text of broken) {
      let reported: number | undefined;
      try {
        JSON.parse(text);
      } catch (e) {
        const m = / at position (\d+)/.exec((e as Error).message);
        reported = m ? Number(m[1]) : undefined;
      }
      if (reported === undefined) continue;
      assert.equal(jsonErrorOffset(text), reported, JSON.stringify(text));
      compared++;
    }
    assert.ok(compared >= 5, `JSON.parse gave a position for only ${compared} texts`);
  });

  it('places the errors it has to find itself', () => {
    const where = (text: string) => lineColumn(text, jsonErrorOffset(text));
    assert.deepEqual(where('{\n  "a": tru\n}'), { line: 2, column: 8 });
    assert.deepEqual(where("{\n  'a': 1\n}"), { line: 2, column: 3 });
    assert.deepEqual(where('[1,\n2,\n]'), { line: 3, column: 1 });
    assert.deepEqual(where('{\n  "a": }'), { line: 2, column: 8 });
    assert.equal(jsonErrorOffset('{"a": [1, {"b": null}]}'), '{"a": [1, {"b": null}]}'.length, 'valid JSON has no error offset');
  });

  it('reports the end of a file that stops early, and skips a byte order mark', () => {
    const r = parseJson('x.json', '{\n  "a": [1,');
    assert.ok(!r.ok);
    assert.equal(r.error, 'x.json:2:11: not valid JSON: the file ends in the middle of a value');
    const bom = parseJson('x.json', '\ufeff{"a": 1}');
    assert.ok(bom.ok);
  });
});

describe('declared dependencies', () => {
  it('finds the line and column of each dependency key in package.json', () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'v2', 'package.json'), 'utf8');
    const keys = dependencyKeys(text);
    assert.deepEqual(Object.fromEntries(keys), {
      '@acme/widgets': { line: 6, column: 5 },
      express: { line: 7, column: 5 },
      'left-pad': { line: 8, column: 5 },
      minimist: { line: 11, column: 5 },
    });
    // Each place is the key's opening quote.
    const lines = text.split('\n');
    for (const [name, at] of keys) assert.ok(lines[at.line - 1].slice(at.column - 1).startsWith(`"${name}":`), name);
  });

  it('is exact with tabs, CRLF, a byte order mark, one-line files and names used elsewhere', () => {
    const tabs = '{\n\t"name": "express",\n\t"scripts": { "express": "node x" },\n\t"dependencies": {\n\t\t"express": "^4"\n\t}\n}\n';
    assert.deepEqual(dependencyKeys(tabs).get('express'), { line: 5, column: 3 });
    const crlf = '{\r\n  "dependencies": {\r\n    "qs": "6.5.2",\r\n    "express": "^4"\r\n  }\r\n}\r\n';
    assert.deepEqual(dependencyKeys(crlf).get('express'), { line: 4, column: 5 });
    assert.deepEqual(dependencyKeys('\ufeff{"dependencies":{"qs":"1"}}').get('qs'), { line: 1, column: 18 });
    const oneLine = '{"devDependencies":{"mocha":"10"},"dependencies":{"@s/a":"1","mocha":"9"}}';
    assert.deepEqual(dependencyKeys(oneLine).get('mocha'), { line: 1, column: 51 + '"@s/a":"1",'.length }, 'dependencies come before devDependencies');
    assert.deepEqual(dependencyKeys(oneLine).get('@s/a'), { line: 1, column: 51 });
  });

  it('keeps the last of duplicate keys, as JSON does, and finds nothing in text that is not JSON', () => {
    const dup = '{"dependencies": {\n"qs": "1",\n"qs": "2"\n}}';
    assert.deepEqual(dependencyKeys(dup).get('qs'), { line: 3, column: 1 });
    assert.equal(dependencyKeys('{"dependencies": {"qs": }').size, 0);
  });
});
