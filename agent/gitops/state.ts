import { Document, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair } from 'yaml';
import type { EnvironmentState, Release } from '../protocol';
import { err, ok, type Result } from '../util/lifecycle';

/**
 * An environment's state file: `<path>/<environment>.yml` on the state branch. It is the desired
 * state of the environment; deploys, promotions and rollbacks commit it, and so may anyone.
 *
 *     environment: staging
 *     artifact:
 *       kind: image
 *       repository: 127.0.0.1:5000/hello
 *       digest: sha256:…
 *     command: []
 *     env:
 *       GREETING: hello
 *     replicas: 1
 *     containerPort: 8080
 *     source: { release: 7, run: 12, commit: 1a2b3c… }
 */

/** What is wrong with a state file, and where. */
export interface StateFileError {
  message: string;
  line: number | null;
  column: number | null;
}

export interface ParsedState {
  state: EnvironmentState;
  /** The line of each key: artifact, artifact.digest, env, env.NAME, replicas, ... */
  lines: Record<string, number>;
}

const HEADER = (env: string) =>
  ` Desired state of the "${env}" environment, kept by Conveyor.\n` +
  ` Edit and commit this file to change what runs; Conveyor applies each commit within seconds.\n` +
  ` Deploys, promotions and rollbacks are commits here, so \`git log\` is the audit trail.`;

/** The state file's text for a state: stable key order, so diffs stay small. */
export function renderState(s: EnvironmentState): string {
  const artifact: Record<string, unknown> =
    s.artifact.kind === 'image'
      ? { kind: 'image', repository: s.artifact.repository, digest: s.artifact.digest, ...(s.artifact.tag ? { tag: s.artifact.tag } : {}) }
      : { kind: 'files', name: s.artifact.name, digest: s.artifact.digest };
  const doc = new Document({
    environment: s.environment,
    artifact,
    command: s.command,
    env: s.env,
    replicas: s.replicas,
    containerPort: s.containerPort,
    source: s.source,
  });
  doc.commentBefore = HEADER(s.environment);
  const source = doc.get('source', true);
  if (source && isMap(source)) source.flow = true;
  const command = doc.get('command', true);
  if (command && isSeq(command)) command.flow = true;
  return doc.toString({ lineWidth: 0 });
}

/** The desired state of a release, for its state file. */
export function stateOfRelease(r: Release, tag?: string): EnvironmentState {
  return {
    environment: r.environment,
    artifact: tag && r.artifact.kind === 'image' ? { ...r.artifact, tag } : { ...r.artifact },
    command: [...r.command],
    env: { ...r.env },
    replicas: r.replicas,
    containerPort: r.containerPort,
    source: { release: r.number, run: r.runId, commit: r.commit },
  };
}

/** Whether a release runs exactly what a state says (the `source` and the image tag are records, not state). */
export function sameContent(s: EnvironmentState, r: Release): boolean {
  return contentDiff(s, r).length === 0;
}

/** Each field where a state and a release differ: [path, desired, release]. */
export function contentDiff(s: EnvironmentState, r: Release): [string, string, string][] {
  const out: [string, string, string][] = [];
  const a = s.artifact;
  const b = r.artifact;
  if (a.kind !== b.kind || a.digest !== b.digest) out.push(['artifact', describeArtifact(a), describeArtifact(b)]);
  else if (a.kind === 'image' && b.kind === 'image' && a.repository !== b.repository) out.push(['artifact.repository', a.repository, b.repository]);
  if (JSON.stringify(s.command) !== JSON.stringify(r.command)) out.push(['command', JSON.stringify(s.command), JSON.stringify(r.command)]);
  for (const k of new Set([...Object.keys(s.env), ...Object.keys(r.env)])) {
    if (s.env[k] !== r.env[k]) out.push([`env.${k}`, s.env[k] ?? '(unset)', r.env[k] ?? '(unset)']);
  }
  if (s.replicas !== r.replicas) out.push(['replicas', String(s.replicas), String(r.replicas)]);
  if (s.containerPort !== r.containerPort) out.push(['containerPort', String(s.containerPort), String(r.containerPort)]);
  return out;
}

export function describeArtifact(a: EnvironmentState['artifact'] | Release['artifact']): string {
  const short = a.digest.replace(/^sha256:/, '').slice(0, 12);
  return a.kind === 'image' ? `${a.repository}@${short}${'tag' in a && a.tag ? ` (${a.tag})` : ''}` : `${a.name}@${short}`;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const KEYS = ['environment', 'artifact', 'command', 'env', 'replicas', 'containerPort', 'source'];

/**
 * Reads a state file. Every error names the line and says what to write instead; nothing
 * throws. `expected` is the environment the file's name says.
 */
export function parseState(text: string, expected: string): Result<ParsedState, StateFileError> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (node: Node | null | undefined): { line: number | null; column: number | null } => {
    if (!node?.range) return { line: null, column: null };
    const p = lc.linePos(node.range[0]);
    return { line: p.line, column: p.col };
  };
  const fail = (message: string, node?: Node | null, offset?: number): Result<ParsedState, StateFileError> => {
    if (offset !== undefined) {
      const p = lc.linePos(offset);
      return err({ message, line: p.line, column: p.col });
    }
    return err({ message, ...at(node) });
  };
  if (doc.errors.length) {
    const e = doc.errors[0];
    return fail(`not valid YAML: ${e.message.split('\n')[0]}`, null, e.pos[0]);
  }
  const root = doc.contents;
  if (!root || !isMap(root)) return fail('the state file must be a mapping with environment, artifact, env, replicas, ...', root as Node);
  const lines: Record<string, number> = {};
  const pairs = new Map<string, Pair>();
  for (const item of root.items) {
    const key = isScalar(item.key) ? String(item.key.value) : '';
    if (!KEYS.includes(key)) return fail(`unknown key "${key}"; a state file has ${KEYS.join(', ')}`, item.key as Node);
    pairs.set(key, item as Pair);
    const l = at(item.key as Node).line;
    if (l !== null) lines[key] = l;
  }
  const value = (key: string): Node | null => (pairs.get(key)?.value as Node | null) ?? null;
  const missing = (key: string, example: string) => fail(`"${key}" is missing; add it, e.g. ${example}`, null, 0);

  const envNode = value('environment');
  if (!envNode) return missing('environment', `environment: ${expected}`);
  const environment = isScalar(envNode) ? String(envNode.value) : '';
  if (environment !== expected) return fail(`this file describes "${expected}" (its name) but says environment: ${environment || '(none)'}; write environment: ${expected}`, envNode);

  const artNode = value('artifact');
  if (!artNode) return missing('artifact', 'artifact: { kind: image, repository: 127.0.0.1:5000/app, digest: sha256:… }');
  if (!isMap(artNode)) return fail('"artifact" must be a mapping with kind, digest and repository (images) or name (files)', artNode as Node);
  const art = artNode.toJSON() as Record<string, unknown>;
  const artLine = (k: string) => {
    const p = artNode.items.find((i) => isScalar(i.key) && i.key.value === k);
    return p ? (p.value as Node) : artNode;
  };
  for (const p of artNode.items) {
    const k = isScalar(p.key) ? String(p.key.value) : '';
    const l = at(p.key as Node).line;
    if (l !== null) lines[`artifact.${k}`] = l;
  }
  if (art.kind !== 'image' && art.kind !== 'files') return fail(`artifact.kind must be image or files, not ${JSON.stringify(art.kind ?? null)}`, artLine('kind'));
  if (typeof art.digest !== 'string' || !DIGEST.test(art.digest)) return fail('artifact.digest must be sha256: followed by 64 hex digits, e.g. the digest `docker inspect` or `conveyor history` shows', artLine('digest'));
  let artifact: EnvironmentState['artifact'];
  if (art.kind === 'image') {
    if (typeof art.repository !== 'string' || !art.repository) return fail('artifact.repository is missing; write the image repository, e.g. repository: 127.0.0.1:5000/app', artLine('repository'));
    artifact = { kind: 'image', repository: art.repository, digest: art.digest };
    if (typeof art.tag === 'string' && art.tag) artifact.tag = art.tag;
  } else {
    if (typeof art.name !== 'string' || !art.name) return fail('artifact.name is missing; write the file name, e.g. name: app.tgz', artLine('name'));
    artifact = { kind: 'files', name: art.name, digest: art.digest };
  }

  let command: string[] = [];
  const cmdNode = value('command');
  if (cmdNode && !(isScalar(cmdNode) && cmdNode.value === null)) {
    const c = cmdNode.toJSON() as unknown;
    if (typeof c === 'string') command = ['/bin/sh', '-c', c];
    else if (Array.isArray(c) && c.every((x) => typeof x === 'string' || typeof x === 'number')) command = c.map(String);
    else return fail('"command" must be a list of strings, e.g. [node, server.js], or one shell line', cmdNode);
  }

  const env: Record<string, string> = {};
  const envMap = value('env');
  if (envMap && !(isScalar(envMap) && envMap.value === null)) {
    if (!isMap(envMap)) return fail('"env" must be a mapping of NAME: value', envMap);
    for (const p of envMap.items) {
      const k = isScalar(p.key) ? String(p.key.value) : '';
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) return fail(`"${k}" is not a variable name; use letters, digits and _`, p.key as Node);
      const v = p.value as Node | null;
      if (!v || !isScalar(v) || (v.value !== null && typeof v.value === 'object')) return fail(`env.${k} must be a string, number or boolean`, v ?? (p.key as Node));
      env[k] = v.value === null ? '' : String(v.value);
      const l = at(p.key as Node).line;
      if (l !== null) lines[`env.${k}`] = l;
    }
  }

  const int = (key: string, def: number, min: number, max: number): number | Result<ParsedState, StateFileError> => {
    const n = value(key);
    if (!n) return def;
    const v = isScalar(n) ? n.value : undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return fail(`"${key}" must be a whole number from ${min} to ${max}, not ${JSON.stringify(n.toJSON())}`, n);
    return v;
  };
  const replicas = int('replicas', 1, 1, 50);
  if (typeof replicas !== 'number') return replicas;
  const containerPort = int('containerPort', 8080, 1, 65535);
  if (typeof containerPort !== 'number') return containerPort;

  const src = (value('source')?.toJSON() ?? {}) as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === 'number' && Number.isInteger(x) ? x : null);
  const source = { release: num(src.release), run: num(src.run), commit: typeof src.commit === 'string' ? src.commit : null };
  return ok({ state: { environment, artifact, command, env, replicas, containerPort, source }, lines });
}
