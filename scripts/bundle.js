// Bundles the agent and CLI (dist/cli.js) and, once they exist, the extension and the webview
// pages, with esbuild. The JSON Schema ships beside the bundle.
const esbuild = require('esbuild');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const dist = path.join(root, 'dist');

async function main() {
  fs.mkdirSync(dist, { recursive: true });
  const common = {
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'linked',
    logLevel: 'warning',
    // Native and optional modules stay outside the bundle.
    external: ['better-sqlite3', 'node-sqlite3-wasm', 'bufferutil', 'utf-8-validate', 'vscode', '*.node'],
    // ES modules bundled into CommonJS (tinyglobby's fdir) read import.meta.url.
    define: { 'import.meta.url': '__conveyorImportMetaUrl' },
    banner: { js: "var __conveyorImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  };
  const builds = [
    esbuild.build({
      ...common,
      entryPoints: [path.join(root, 'agent/cli/main.ts')],
      outfile: path.join(dist, 'cli.js'),
    }),
  ];
  const ext = path.join(root, 'extension/extension.ts');
  if (fs.existsSync(ext)) {
    builds.push(esbuild.build({ ...common, entryPoints: [ext], outfile: path.join(dist, 'extension.js') }));
  }
  await Promise.all(builds);
  fs.chmodSync(path.join(dist, 'cli.js'), 0o755);
  fs.copyFileSync(path.join(root, 'agent/config/conveyor.schema.json'), path.join(dist, 'conveyor.schema.json'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
