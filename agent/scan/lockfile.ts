import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as semver from 'semver';
import { err, ok, type Result } from '../util/lifecycle';
import { DEPENDENCY_GROUPS, lineColumn, parseJson } from './json';

/** One installed version of a package, as a lockfile records it. */
export interface InstalledPackage {
  name: string;
  version: string;
  /** The shortest chain from a direct dependency to this package, both included: ["express", "body-parser", "qs"]. */
  via: string[];
  /** The package.json (relative to the scan's folder, forward slashes) that declares via[0]; null when nothing does. */
  declaredIn: string | null;
}

export interface Lockfile {
  /** Relative to the scan's folder, forward slashes. */
  file: string;
  /** One entry per name@version, sorted by name then version. */
  packages: InstalledPackage[];
}

/**
 * Reads a lockfile: package-lock.json or npm-shrinkwrap.json (lockfile versions 1, 2 and 3,
 * nested installs and workspaces included), or a Yarn 1 yarn.lock. Every installed version is
 * listed with the chain that brings it in. Errors name the file, and the line when the text is
 * wrong.
 */
export async function readLockfile(cwd: string, file: string): Promise<Result<Lockfile, string>> {
  const rel = toPosix(path.normalize(file));
  const abs = path.resolve(cwd, file);
  let text: string;
  try {
    text = await fs.readFile(abs, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return err(
      code === 'ENOENT'
        ? `${rel} does not exist; run "npm install" to write it, or name the lockfiles to read under "scan: lockfiles:"`
        : `${rel} cannot be read: ${(e as Error).message}`,
    );
  }
  const dir = path.posix.dirname(rel);
  const manifest = await readManifest(path.dirname(abs));
  const graph = path.basename(abs) === 'yarn.lock' ? yarnGraph(rel, text, manifest) : npmGraph(rel, text, manifest);
  if (!graph.ok) return graph;
  // Workspaces always have a package.json; the project may not (a lockfile committed alone).
  const manifestOf = (folder: string) => (folder === '' && !manifest ? null : path.posix.join(dir, folder, 'package.json'));
  return ok({ file: rel, packages: installed(graph.value, manifestOf) });
}

/** The dependencies package.json declares, by group; null when there is no readable package.json. */
type Manifest = Partial<Record<(typeof DEPENDENCY_GROUPS)[number], Record<string, string>>> | null;

async function readManifest(dir: string): Promise<Manifest> {
  const text = await fs.readFile(path.join(dir, 'package.json'), 'utf8').catch(() => null);
  const parsed = text === null ? null : parseJson('package.json', text);
  if (!parsed?.ok || !isObject(parsed.value)) return null;
  const groups: Record<string, Record<string, string>> = {};
  for (const g of DEPENDENCY_GROUPS) if (isObject(parsed.value[g])) groups[g] = parsed.value[g] as Record<string, string>;
  return groups;
}

/**
 * Packages and what they depend on. A node is the project or one of its workspaces (`local`:
 * its folder relative to the lockfile's), or an installed package. `resolve` finds the node a
 * dependency of a node resolves to.
 */
interface Graph {
  nodes: Map<string, GraphNode>;
  root: string;
  resolve(from: string, dependency: string): string | undefined;
}

interface GraphNode {
  name: string;
  version: string | null;
  local: string | null;
  dependencies: string[];
}

/** Walks the graph breadth first from the project and its workspaces, so each package gets its shortest chain. */
function installed(graph: Graph, manifestOf: (folder: string) => string | null): InstalledPackage[] {
  const reached = new Map<string, { via: string[]; declaredIn: string | null }>();
  // The project first, then its workspaces: each local package starts chains of its own.
  const queue = [graph.root, ...[...graph.nodes.keys()].filter((k) => k !== graph.root && graph.nodes.get(k)!.local !== null)];
  for (const key of queue) reached.set(key, { via: [], declaredIn: manifestOf(graph.nodes.get(key)!.local!) });
  for (let i = 0; i < queue.length; i++) {
    const from = reached.get(queue[i])!;
    for (const dependency of graph.nodes.get(queue[i])!.dependencies) {
      const key = graph.resolve(queue[i], dependency);
      if (key === undefined || reached.has(key)) continue;
      const node = graph.nodes.get(key)!;
      reached.set(key, { via: [...from.via, node.name], declaredIn: from.declaredIn });
      queue.push(key);
    }
  }
  const byVersion = new Map<string, InstalledPackage>();
  const add = (key: string, node: GraphNode) => {
    if (node.local !== null || node.version === null) return;
    const id = `${node.name}@${node.version}`;
    const r = reached.get(key) ?? { via: [node.name], declaredIn: null };
    const known = byVersion.get(id);
    if (!known || r.via.length < known.via.length) byVersion.set(id, { name: node.name, version: node.version, via: r.via, declaredIn: r.declaredIn });
  };
  for (const key of queue) add(key, graph.nodes.get(key)!);
  // Installed but needed by nothing the lockfile knows of (extraneous): still installed, so still scanned.
  for (const [key, node] of graph.nodes) if (!reached.has(key)) add(key, node);
  return [...byVersion.values()].sort((a, b) => a.name.localeCompare(b.name) || semver.compare(a.version, b.version));
}

type Json = Record<string, unknown>;

interface NpmEntry {
  name?: string;
  version?: string;
  link?: boolean;
  resolved?: string;
  dependencies?: Record<string, unknown>;
  devDependencies?: Record<string, unknown>;
  optionalDependencies?: Record<string, unknown>;
  peerDependencies?: Record<string, unknown>;
  requires?: Record<string, unknown> | boolean;
}

/** package-lock.json: the flat `packages` map of versions 2 and 3, else version 1's nested `dependencies`. */
function npmGraph(file: string, text: string, manifest: Manifest): Result<Graph, string> {
  const parsed = parseJson(file, text);
  if (!parsed.ok) return parsed;
  const lock = parsed.value as Json;
  if (typeof lock !== 'object' || lock === null || Array.isArray(lock)) return err(`${file}:1:1: not a package-lock.json: the file is not a JSON object`);
  if (isObject(lock.packages)) return ok(flatGraph(lock.packages as Record<string, NpmEntry>));
  if (isObject(lock.dependencies)) return ok(nestedGraph(lock.dependencies as Record<string, NpmEntry>, manifest));
  return err(
    `${file}:1:1: not a package-lock.json: it has neither "packages" (lockfile version 2 and 3) nor "dependencies" (version 1); run "npm install" to write it again`,
  );
}

/** Lockfile versions 2 and 3: keys are install paths ("node_modules/a/node_modules/b"), "" is the project. */
function flatGraph(packages: Record<string, NpmEntry>): Graph {
  const nodes = new Map<string, GraphNode>();
  const installPath = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)$/;
  for (const [key, entry] of Object.entries(packages)) {
    if (typeof entry !== 'object' || entry === null || entry.link) continue;
    const local = installPath.test(key) ? null : key;
    const groups: (keyof NpmEntry)[] = local !== null ? [...DEPENDENCY_GROUPS] : ['dependencies', 'optionalDependencies', 'peerDependencies'];
    nodes.set(key, {
      name: typeof entry.name === 'string' ? entry.name : (installPath.exec(key)?.[1] ?? key),
      version: validVersion(entry.version),
      local,
      dependencies: groups.flatMap((g) => (isObject(entry[g]) ? Object.keys(entry[g] as object) : [])),
    });
  }
  if (!nodes.has('')) nodes.set('', { name: '', version: null, local: '', dependencies: [] });
  return {
    nodes,
    root: '',
    resolve: (from, name) =>
      lookup(from, name, (key) => {
        // A workspace is installed as a link to its folder.
        const entry = packages[key];
        if (entry?.link && typeof entry.resolved === 'string') return nodes.has(entry.resolved) ? entry.resolved : undefined;
        return nodes.has(key) ? key : undefined;
      }),
  };
}

/** Lockfile version 1: a tree of `dependencies` with `requires`; the project's own come from package.json. */
function nestedGraph(tree: Record<string, NpmEntry>, manifest: Manifest): Graph {
  const nodes = new Map<string, GraphNode>();
  const add = (prefix: string, deps: Record<string, NpmEntry>) => {
    for (const [name, entry] of Object.entries(deps)) {
      if (typeof entry !== 'object' || entry === null) continue;
      const key = `${prefix}node_modules/${name}`;
      const alias = /^npm:((?:@[^/]+\/)?[^@]+)@(.+)$/.exec(typeof entry.version === 'string' ? entry.version : '');
      nodes.set(key, {
        name: alias ? alias[1] : name,
        version: validVersion(alias ? alias[2] : entry.version),
        local: null,
        dependencies: isObject(entry.requires) ? Object.keys(entry.requires) : [],
      });
      if (isObject(entry.dependencies)) add(`${key}/`, entry.dependencies as Record<string, NpmEntry>);
    }
  };
  add('', tree);
  const direct = manifest ? DEPENDENCY_GROUPS.flatMap((g) => Object.keys(manifest[g] ?? {})) : Object.keys(tree);
  nodes.set('', { name: '', version: null, local: '', dependencies: direct });
  return {
    nodes,
    root: '',
    resolve: (from, name) => lookup(from, name, (key) => (nodes.has(key) ? key : undefined)),
  };
}

/** Node's lookup of a dependency: node_modules of the package's own folder, then of each folder above it. */
function lookup(from: string, name: string, found: (installPath: string) => string | undefined): string | undefined {
  for (let dir = from; ; dir = parentOf(dir)) {
    const key = found(`${dir ? `${dir}/` : ''}node_modules/${name}`);
    if (key !== undefined || !dir) return key;
  }
}

/** The folder above an install path or workspace folder ("" above the top). */
function parentOf(dir: string): string {
  const up = path.posix.dirname(dir);
  return up === '.' ? '' : up;
}

/**
 * Yarn 1's yarn.lock: blocks keyed by the specs they resolve ("name@range", comma-separated),
 * with indented `version` and `dependencies`.
 */
function yarnGraph(file: string, text: string, manifest: Manifest): Result<Graph, string> {
  if (/^__metadata:/m.test(text)) {
    return err(`${file}:${lineColumn(text, text.search(/^__metadata:/m)).line}:1: this yarn.lock is Yarn 2 or later's format; Conveyor reads Yarn 1 lockfiles and package-lock.json`);
  }
  const nodes = new Map<string, GraphNode>();
  const bySpec = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  let current: GraphNode | null = null;
  let group: string | null = null;
  const bad = (n: number, why: string) => err(`${file}:${n + 1}:1: not a Yarn 1 lockfile line (${why}): ${JSON.stringify(lines[n].slice(0, 80))}`);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const indent = line.length - line.trimStart().length;
    if (indent === 0) {
      if (!line.endsWith(':')) return bad(n, 'a block starts with the specs it resolves, then ":"');
      const specs = line.slice(0, -1).split(/,\s*/).map(unquote);
      const key = specs[0];
      const { name, range } = splitSpec(key);
      const alias = /^npm:(.+)$/.exec(range);
      current = { name: alias ? splitSpec(alias[1]).name : name, version: null, local: null, dependencies: [] };
      nodes.set(key, current);
      for (const spec of specs) bySpec.set(spec, key);
      group = null;
      continue;
    }
    if (!current) return bad(n, 'an indented line comes before any block');
    const field = /^\s+("(?:[^"\\]|\\.)*"|[^\s"]+)(?:\s+(.*)|(:))$/.exec(line);
    if (!field) return bad(n, 'expected "key value" or "key:"');
    const key = unquote(field[1]);
    if (indent <= 2) {
      group = field[3] ? key : null;
      if (key === 'version' && field[2] !== undefined) current.version = validVersion(unquote(field[2]));
    } else if (group === 'dependencies' || group === 'optionalDependencies') {
      current.dependencies.push(`${key}@${unquote(field[2] ?? '')}`);
    }
  }
  const direct = manifest ? DEPENDENCY_GROUPS.flatMap((g) => Object.entries(manifest[g] ?? {}).map(([n, r]) => `${n}@${r}`)) : [...nodes.keys()];
  nodes.set('', { name: '', version: null, local: '', dependencies: direct });
  return ok({ nodes, root: '', resolve: (_from, spec) => bySpec.get(spec) });
}

/** "@scope/name@^1.2.0" → name "@scope/name", range "^1.2.0". */
function splitSpec(spec: string): { name: string; range: string } {
  const at = spec.indexOf('@', 1);
  return at === -1 ? { name: spec, range: '' } : { name: spec.slice(0, at), range: spec.slice(at + 1) };
}

function unquote(s: string): string {
  const t = s.trim();
  if (!t.startsWith('"')) return t;
  try {
    return JSON.parse(t) as string;
  } catch {
    return t.slice(1, -1);
  }
}

function validVersion(v: unknown): string | null {
  return typeof v === 'string' ? semver.valid(v) : null;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function toPosix(p: string): string {
  return p.split(path.sep).join('/');
}
