import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMap, isPair, isScalar, isSeq, parseDocument, Scalar, visit, YAMLMap, YAMLSeq, type Document, type Node, type Pair } from 'yaml';
import { analyzeConfigText } from '../../agent/config';
import type { Random } from './mode';

const ROOT = path.resolve(__dirname, '../../..');

/** A valid conveyor.yml and where it comes from. */
export interface CorpusEntry {
  source: string;
  text: string;
}

/**
 * Valid configs to mutate: the examples, the test fixtures, the README's snippets and the YAML
 * literals of the config tests. Only those the analyzer accepts as they are make the corpus.
 */
export function configCorpus(): CorpusEntry[] {
  const found: CorpusEntry[] = [];
  for (const dir of ['examples', 'test/fixtures']) {
    for (const rel of fs.readdirSync(path.join(ROOT, dir), { recursive: true }) as string[]) {
      if (/(^|\/)conveyor\.ya?ml$/.test(rel) && !rel.includes('node_modules')) found.push({ source: `${dir}/${rel}`, text: fs.readFileSync(path.join(ROOT, dir, rel), 'utf8') });
    }
  }
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  for (const [i, m] of [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].entries()) {
    // A snippet shows part of a file: completed with a pipeline, or as stages of one.
    const text = [m[1], `pipeline:\n  stages:\n    - { name: build, run: echo build }\n${m[1]}`, `pipeline:\n  stages:\n${m[1]}`].find((t) => analyzeConfigText(t, 'conveyor.yml').valid);
    if (text) found.push({ source: `README.md yaml block ${i + 1}`, text });
  }
  const tests = path.join(ROOT, 'test/agent/config');
  for (const file of fs.readdirSync(tests).filter((f) => f.endsWith('.test.ts'))) {
    const source = fs.readFileSync(path.join(tests, file), 'utf8');
    for (const m of source.matchAll(/`([^`]*\bpipeline:[^`]*)`/g)) {
      if (!m[1].includes('${') && !m[1].includes('\\')) found.push({ source: `test/agent/config/${file}`, text: m[1] });
    }
  }
  const seen = new Set<string>();
  return found.filter((c) => {
    if (seen.has(c.text)) return false;
    seen.add(c.text);
    return analyzeConfigText(c.text, 'conveyor.yml').valid;
  });
}

/** Every property name the schema knows: a key in the wrong place is a likely mistake. */
function schemaKeys(): string[] {
  const keys = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        if (k === 'properties' && child && typeof child === 'object') for (const name of Object.keys(child)) keys.add(name);
        walk(child);
      }
    }
  };
  walk(JSON.parse(fs.readFileSync(path.join(ROOT, 'agent/config/conveyor.schema.json'), 'utf8')));
  return [...keys];
}

const KEYS = schemaKeys();

/** Values of every type YAML has, and some that look like the config's own. */
const SCALARS: unknown[] = [
  '', null, 0, -1, 1.5, 1e21, Number.MAX_SAFE_INTEGER + 2, true, false, 'x', 'build', 'test', 'staging', '10m', '1h30m', '500ms',
  '10 minutes', '-5s', '0s', 'NaN', '.inf', 'auto', 'manual', 'blue-green', 'process', 'docker', 'commit', 'save', '*',
  '../../etc/passwd', '/abs/path', 'a'.repeat(10_000), '\u0000\u0007', 'ünïcødé ✓ 😀', '${HOME}', '$(rm -rf /)', 'http://[::1', '{{x}}',
];

const TOKENS = [':', '- ', '[', ']', '{', '}', '&a ', '*a', '*missing', '\t', '"', "'", '#', '---\n', '<<: *a\n', '? ', '|', '>', '!!str ', '!!binary ', '!custom ', ',', '%', '@', '`', '\n', '  ', '~', '\\', '\r\n', '\ufeff', '\u2028'];

/** One to three mutations of a valid config, on its text or on its YAML tree. */
export function mutateConfig(text: string, rnd: Random): string {
  let out = text;
  for (let n = rnd.int(1, 3); n > 0; n--) out = rnd.chance(0.5) ? mutateTree(out, rnd) : mutateText(out, rnd);
  return out;
}

function mutateText(text: string, rnd: Random): string {
  const lines = text.split('\n');
  const li = rnd.int(0, lines.length - 1);
  const pos = rnd.int(0, text.length);
  switch (rnd.int(0, 7)) {
    case 0:
      lines.splice(li, 1);
      return lines.join('\n');
    case 1:
      lines.splice(li, 0, lines[li]);
      return lines.join('\n');
    case 2: {
      const lj = rnd.int(0, lines.length - 1);
      [lines[li], lines[lj]] = [lines[lj], lines[li]];
      return lines.join('\n');
    }
    case 3: {
      const delta = rnd.int(-4, 4);
      lines[li] = delta >= 0 ? ' '.repeat(delta) + lines[li] : lines[li].replace(new RegExp(`^ {0,${-delta}}`), '');
      return lines.join('\n');
    }
    case 4:
      return text.slice(0, pos) + String.fromCharCode(rnd.int(32, 126)) + text.slice(pos);
    case 5:
      return text.slice(0, pos) + rnd.pick(TOKENS) + text.slice(pos);
    case 6:
      return text.slice(0, pos) + text.slice(pos + rnd.int(1, 8));
    default:
      return text.slice(0, pos) + text.slice(pos, pos + rnd.int(1, 40)).repeat(rnd.int(2, 4)) + text.slice(pos);
  }
}

function mutateTree(text: string, rnd: Random): string {
  const doc = parseDocument(text);
  if (doc.errors.length) return mutateText(text, rnd);
  const pairs: { pair: Pair; parent: YAMLMap }[] = [];
  const seqs: YAMLSeq[] = [];
  const maps: YAMLMap[] = [];
  const stages: YAMLMap[] = [];
  visit(doc, {
    Pair(_key, pair, path) {
      const parent = path[path.length - 1];
      if (isMap(parent)) pairs.push({ pair: pair as Pair, parent });
    },
    Map(_key, map) {
      maps.push(map);
      if (map.has('name') && (map.has('run') || map.has('kind'))) stages.push(map);
    },
    Seq(_key, seq) {
      seqs.push(seq);
    },
  });
  if (pairs.length === 0) return mutateText(text, rnd);
  const stageNames = stages.map((s) => String(s.get('name')));
  const { pair, parent } = rnd.pick(pairs);
  switch (rnd.int(0, 8)) {
    case 0:
      parent.items.splice(parent.items.indexOf(pair), 1);
      break;
    case 1: {
      // A typo of the key, or a key of another place.
      const k = String(isScalar(pair.key) ? pair.key.value : pair.key);
      const typo = k.length > 2 ? (rnd.chance(0.5) ? k.slice(0, -1) : k[1] + k[0] + k.slice(2)) : `${k}x`;
      pair.key = doc.createNode(rnd.chance(0.5) ? typo : rnd.pick(KEYS));
      break;
    }
    case 2:
      pair.value = doc.createNode(rnd.pick(SCALARS));
      break;
    case 3:
      pair.value = rnd.chance(0.5) ? doc.createNode([rnd.pick(SCALARS), rnd.pick(SCALARS)]) : doc.createNode({ [rnd.pick(KEYS)]: rnd.pick(SCALARS) });
      break;
    case 4: {
      if (seqs.length === 0) break;
      const seq = rnd.pick(seqs);
      if (seq.items.length) seq.items.push(doc.createNode((seq.items[rnd.int(0, seq.items.length - 1)] as Node).toJSON()));
      break;
    }
    case 5: {
      // Needs that point nowhere, at the stage itself, or round in a cycle.
      if (stages.length === 0) break;
      const stage = rnd.pick(stages);
      const target = rnd.chance(0.3) ? `${rnd.pick(stageNames)}x` : rnd.pick(stageNames);
      stage.set('needs', doc.createNode(rnd.chance(0.5) ? [target] : target));
      break;
    }
    case 6:
      rnd.pick(maps).set(rnd.pick(KEYS), doc.createNode(rnd.pick(SCALARS)));
      break;
    case 7: {
      // A value replaced by an alias of another node, anchored where it is.
      const { pair: other } = rnd.pick(pairs);
      if (other === pair || !other.value || !(isScalar(other.value) || isMap(other.value) || isSeq(other.value))) break;
      const anchored = other.value as Scalar | YAMLMap | YAMLSeq;
      anchored.anchor ??= `a${rnd.int(1, 999)}`;
      pair.value = doc.createAlias(anchored as Scalar);
      break;
    }
    default:
      if (isPair(pair) && isScalar(pair.value)) pair.value.value = `${String(pair.value.value)}${rnd.pick(['', ' ', '\n', ': x', ' # c', '\t'])}${rnd.pick(SCALARS)}`;
  }
  return stringify(doc, text, rnd);
}

function stringify(doc: Document, fallback: string, rnd: Random): string {
  try {
    return doc.toString({ lineWidth: 0 });
  } catch {
    // An alias to a node that comes later cannot be written: mutate the text instead.
    return mutateText(fallback, rnd);
  }
}
