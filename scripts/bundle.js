// Bundles the agent and CLI (dist/cli.js) and, once they exist, the extension and the webview
// pages, with esbuild. The JSON Schema ships beside the bundle.
//
// The dashboard pages (webview/) run in a browser: they are type-checked here with their own
// tsconfig (DOM types; the root tsconfig leaves them out), then bundled for the browser into
// dist/webview/<page>.js and <page>.css, with @vscode-elements/elements and uPlot inside.
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
    // The worker thread that parses big test reports; the bundles find it beside themselves.
    esbuild.build({
      ...common,
      entryPoints: [path.join(root, 'agent/reports/reportWorker.ts')],
      outfile: path.join(dist, 'reportWorker.js'),
    }),
  ];
  const ext = path.join(root, 'extension/extension.ts');
  if (fs.existsSync(ext)) {
    builds.push(esbuild.build({ ...common, entryPoints: [ext], outfile: path.join(dist, 'extension.js') }));
  }
  const pages = path.join(root, 'webview');
  if (fs.existsSync(path.join(pages, 'tsconfig.json'))) {
    typeCheck(path.join(pages, 'tsconfig.json'));
    builds.push(bundlePages(pages, path.join(dist, 'webview')));
  }
  await Promise.all(builds);
  fs.chmodSync(path.join(dist, 'cli.js'), 0o755);
  fs.copyFileSync(path.join(root, 'agent/config/conveyor.schema.json'), path.join(dist, 'conveyor.schema.json'));
}

/** Fails the build on any type error of a project that is only bundled (never emitted by tsc). */
function typeCheck(configFile) {
  const ts = require('typescript');
  const read = ts.readConfigFile(configFile, ts.sys.readFile);
  if (read.error) throw new Error(ts.formatDiagnostic(read.error, formatHost(ts)));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, path.dirname(configFile));
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program)];
  if (diagnostics.length) {
    throw new Error(`type errors in ${path.relative(root, path.dirname(configFile))}/:\n${ts.formatDiagnosticsWithColorAndContext(diagnostics, formatHost(ts))}`);
  }
}

function formatHost(ts) {
  return { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
}

/** One script and one style sheet per dashboard page, minified, for the browser. */
async function bundlePages(pages, out) {
  fs.rmSync(out, { recursive: true, force: true });
  const entryPoints = {};
  for (const page of ['run', 'metrics', 'timeline']) entryPoints[page] = path.join(pages, page, 'main.ts');
  await esbuild.build({
    entryPoints,
    outdir: out,
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: ['chrome114', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: 'warning',
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
