// `npm run reliability`: the suites of test/reliability at full size (50 kill points, 1,000
// forced disconnects, 10,000 mutated configs, 20,000 API requests, 5 minutes of load, and the
// fast suites as they are), then the Reliability table in Markdown. The figures also go to
// test-output/reliability.json. `npm run reliability -- crash load` runs only those suites.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const compiled = path.join(root, 'out', 'test', 'reliability');

function main() {
  const available = fs
    .readdirSync(compiled)
    .filter((f) => f.endsWith('.test.js'))
    .map((f) => f.replace(/\.test\.js$/, ''));
  const asked = process.argv.slice(2);
  const unknown = asked.filter((name) => !available.includes(name));
  if (unknown.length) {
    console.error(`no reliability suite ${unknown.map((n) => `"${n}"`).join(', ')}; there are: ${available.join(', ')}`);
    return 2;
  }
  const suites = asked.length ? asked : available;
  const figuresFile = path.join(os.tmpdir(), `conveyor-reliability-${process.pid}.jsonl`);
  fs.rmSync(figuresFile, { force: true });
  const started = new Date();
  console.log(`conveyor reliability (full) · node ${process.version} · ${os.cpus().length} cores · ${started.toISOString()}\n`);
  const mocha = spawnSync(
    process.execPath,
    [
      require.resolve('mocha/bin/mocha.js', { paths: [root] }),
      '--no-config',
      '--exit',
      '--timeout', String(2 * 60 * 60 * 1000),
      '--reporter', path.join(root, 'scripts', 'mocha-reporter.js'),
      ...suites.map((s) => path.join(compiled, `${s}.test.js`)),
    ],
    { cwd: root, stdio: 'inherit', env: { ...process.env, CONVEYOR_RELIABILITY: 'full', CONVEYOR_RELIABILITY_FIGURES: figuresFile } },
  );
  const figures = fs.existsSync(figuresFile)
    ? fs
        .readFileSync(figuresFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
    : [];
  fs.rmSync(figuresFile, { force: true });

  console.log(`\n## Reliability\n\n${table(figures)}`);
  const out = path.join(root, 'test-output');
  fs.mkdirSync(out, { recursive: true });
  const report = {
    date: started.toISOString(),
    minutes: Math.round((Date.now() - started.getTime()) / 600) / 100,
    node: process.version,
    cores: os.cpus().length,
    suites,
    passed: mocha.status === 0,
    figures,
  };
  fs.writeFileSync(path.join(out, 'reliability.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(`\n(${figures.length} figures in test-output/reliability.json; mocha exited ${mocha.status ?? mocha.signal})`);
  return mocha.status ?? 1;
}

/** One row per figure, grouped by suite in the order they ran. */
function table(figures) {
  const cell = (v) => String(v).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const value = (v) => (typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : v);
  const rows = figures.map((f) => {
    const verdict = f.ok === undefined ? '' : f.ok ? 'met' : '**missed**';
    return `| ${cell(f.suite)} | ${cell(f.measure)} | ${cell(value(f.value))} | ${cell(f.target ?? '')} | ${verdict} |`;
  });
  return ['| suite | measure | figure | target | result |', '|---|---|---|---|---|', ...rows].join('\n');
}

process.exit(main());
