import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { isMap, isScalar, isSeq, parseAllDocuments, type Node as YamlNode } from 'yaml';
import type {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  V1Container,
  V1Deployment,
  V1Pod,
  V1PodSpec,
} from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { DeployStrategy, HealthCheck, HealthStatus, LiveInstance, LiveState, Release } from '../protocol';
import { DisposableSet } from '../util/disposable-set';
import { InFlight } from '../util/in-flight';
import { toDisposable, type IDisposable } from '../util/lifecycle';
import { Backoff, Debouncer, sleep } from '../util/timers';
import type { ApplyContext, ApplyResult, DesiredState, Runtime } from './runtime';

type K8s = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });

let client: Promise<K8s> | undefined;
/** @kubernetes/client-node is an ES module: loaded on first use, once. */
function loadClient(): Promise<K8s> {
  return (client ??= import('@kubernetes/client-node'));
}

/**
 * Labels on every object (and pod template) the kubernetes runtime applies; observe, watch, prune
 * and remove select by them. The same keys as the docker runtime's, so drift reads both alike.
 */
export const LABEL = {
  managed: 'conveyor.managed',
  environment: 'conveyor.environment',
  release: 'conveyor.release',
  containerPort: 'conveyor.container-port',
  run: 'conveyor.run',
  commit: 'conveyor.commit',
} as const;

/** Annotations: values that are not valid label values (digests, JSON). */
export const ANNOTATION = {
  digest: 'conveyor.digest',
  repository: 'conveyor.repository',
  /** The environment's health check (JSON): its timeout tells Progressing from Degraded. */
  health: 'conveyor.health',
  /** Which container of a pod template runs the release's image. */
  container: 'conveyor.container',
} as const;

/** Server-side apply's field manager: the owner of every field Conveyor sets. */
export const FIELD_MANAGER = 'conveyor';

/** Where the cluster is and what to apply, from the environment's `settings.kubernetes` in conveyor.yml. */
export interface KubernetesRuntimeSettings {
  /** Absolute path of the kubeconfig. None: KUBECONFIG, then ~/.kube/config. */
  kubeconfig?: string;
  /** The kubeconfig context. None: its current-context. */
  context?: string;
  /** None: the context's namespace, else "default". Created when missing. */
  namespace?: string;
  /** Absolute paths of YAML files or folders of them. None: Conveyor renders a Deployment, a Service and a ConfigMap. */
  manifests?: string[];
  /** Coalesces the events watch() reports. Default 250 ms. */
  debounceMs?: number;
  /** Extra labels on every object. */
  labels?: Record<string, string>;
}

/** A failure already said for people (what failed, how to fix it). */
export class KubernetesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubernetesError';
  }
}

/** Bad `settings.kubernetes` in conveyor.yml, or bad manifests. */
export class KubernetesSettingsError extends KubernetesError {
  constructor(message: string) {
    super(message);
    this.name = 'KubernetesSettingsError';
  }
}

/**
 * The kubernetes settings of an environment as conveyor.yml writes them (EnvironmentConfig.settings):
 * `kubernetes: { kubeconfig, context, namespace, manifests }`. Relative paths are read from
 * `baseDir` (the workspace). Throws KubernetesSettingsError, saying which key is wrong.
 */
export function kubernetesSettingsOf(settings: Record<string, unknown>, baseDir: string): KubernetesRuntimeSettings {
  const raw = settings.kubernetes;
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new KubernetesSettingsError('settings.kubernetes must be a mapping: { kubeconfig, context, namespace, manifests }');
  }
  const k = raw as Record<string, unknown>;
  const out: KubernetesRuntimeSettings = {};
  const text = (key: string): string | undefined => {
    const v = k[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || !v.trim()) throw new KubernetesSettingsError(`settings.kubernetes.${key} must be a non-empty string`);
    return v.trim();
  };
  const resolve = (p: string) => (p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : path.resolve(baseDir, p));
  const kubeconfig = text('kubeconfig');
  if (kubeconfig) out.kubeconfig = resolve(kubeconfig);
  out.context = text('context');
  out.namespace = text('namespace');
  if (out.namespace && !DNS_LABEL.test(out.namespace)) {
    throw new KubernetesSettingsError(`settings.kubernetes.namespace "${out.namespace}" is not a valid namespace name: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit`);
  }
  const manifests = k.manifests;
  if (manifests !== undefined && manifests !== null) {
    const list = typeof manifests === 'string' ? [manifests] : manifests;
    if (!Array.isArray(list) || !list.length || list.some((m) => typeof m !== 'string' || !m.trim())) {
      throw new KubernetesSettingsError('settings.kubernetes.manifests must be a path or a list of paths (YAML files or folders of them, relative to the workspace)');
    }
    out.manifests = (list as string[]).map((m) => resolve(m.trim()));
  }
  for (const key of Object.keys(out) as (keyof KubernetesRuntimeSettings)[]) if (out[key] === undefined) delete out[key];
  return out;
}

// -- the client ----------------------------------------------------------------------------------

/** Which cluster, as a kubeconfig names it. */
export interface KubernetesTarget {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

/** A Kubernetes object as JSON, as the API server reads and writes it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: unknown[];
    managedFields?: { manager?: string; operation?: string; fieldsV1?: Record<string, unknown> }[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** The API clients of one kubeconfig context, and where they point (for messages). */
export interface KubeClient {
  k8s: K8s;
  kc: KubeConfig;
  objects: ObjectsApi;
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
  namespace: string;
  origin: { server: string; user: string; context: string; source: string };
}

/**
 * Reads the kubeconfig (settings.kubernetes.kubeconfig, else KUBECONFIG, else ~/.kube/config),
 * picks the context and makes the API clients. Throws a message that says what to fix.
 */
export async function connectKubernetes(target: KubernetesTarget): Promise<KubeClient> {
  const k8s = await loadClient();
  const kc = new k8s.KubeConfig();
  let source: string;
  if (target.kubeconfig) {
    source = target.kubeconfig;
    if (!fs.existsSync(source)) throw new KubernetesSettingsError(`the kubeconfig ${source} (settings.kubernetes.kubeconfig) does not exist`);
  } else if (process.env.KUBECONFIG) {
    source = process.env.KUBECONFIG;
  } else {
    source = path.join(os.homedir(), '.kube', 'config');
    if (!fs.existsSync(source)) {
      throw new KubernetesSettingsError(`no kubeconfig: set settings.kubernetes.kubeconfig for the environment in conveyor.yml, or KUBECONFIG, or write ${source}`);
    }
  }
  try {
    if (target.kubeconfig) kc.loadFromFile(source);
    else kc.loadFromDefault();
  } catch (e) {
    throw new KubernetesSettingsError(`could not read the kubeconfig ${source}: ${(e as Error).message}`);
  }
  if (target.context) {
    const names = kc.getContexts().map((c) => c.name);
    if (!names.includes(target.context)) {
      throw new KubernetesSettingsError(`the kubeconfig ${source} has no context "${target.context}" (settings.kubernetes.context); it has: ${names.join(', ') || 'none'}`);
    }
    kc.setCurrentContext(target.context);
  }
  const context = kc.getCurrentContext();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubernetesSettingsError(`the kubeconfig ${source} names no cluster for context "${context}": set current-context, or settings.kubernetes.context`);
  const namespace = target.namespace ?? kc.getContextObject(context)?.namespace ?? 'default';
  return {
    k8s,
    kc,
    objects: new ObjectsApi(kc, cluster.server),
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    batch: kc.makeApiClient(k8s.BatchV1Api),
    namespace,
    origin: { server: cluster.server, user: kc.getCurrentUser()?.name ?? '(none)', context, source },
  };
}

/** An answer of the API server that is not a success: its status code and body (the shape of client-node's ApiException). */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly body: string,
  ) {
    super(`the API server answered ${code}`);
    this.name = 'ApiError';
  }
}

/**
 * Server-side apply, list and delete of any kind of object, as JSON exactly as written; each
 * kind's resource is found by discovery. (client-node's generic client passes objects through its
 * typed models, which drop the fields they name differently, such as a NetworkPolicy's `from`.)
 */
export class ObjectsApi {
  private readonly discovery = new Map<string, Promise<Map<string, { name: string; namespaced: boolean }>>>();

  constructor(
    private readonly kc: KubeConfig,
    private readonly server: string,
  ) {}

  /** Server-side apply with the field manager `conveyor`, taking over fields others own (force). */
  async apply(o: KubeObject, dryRun = false): Promise<KubeObject> {
    const url = `${await this.objectPath(o)}?fieldManager=${FIELD_MANAGER}&force=true${dryRun ? '&dryRun=All' : ''}`;
    return (await this.request('PATCH', url, JSON.stringify(o), 'application/apply-patch+yaml')) as KubeObject;
  }

  /** Replaces the object (PUT) with `o`, as the field manager `conveyor`; 409 when it changed since `o`'s metadata.resourceVersion. */
  async replace(o: KubeObject): Promise<KubeObject> {
    const url = `${await this.objectPath(o)}?fieldManager=${FIELD_MANAGER}`;
    return (await this.request('PUT', url, JSON.stringify(o))) as KubeObject;
  }

  /** The objects of a kind in a namespace that match a label selector; undefined when the server does not serve the kind. */
  async list(kind: Kind, namespace: string, labelSelector: string): Promise<KubeObject[] | undefined> {
    const r = await this.resource(kind);
    if (!r) return undefined;
    const list = (await this.request('GET', `${collectionPath(kind, r, namespace)}?labelSelector=${encodeURIComponent(labelSelector)}`)) as { items?: KubeObject[] };
    return (list.items ?? []).map((i) => ({ ...i, apiVersion: kind.apiVersion, kind: kind.kind }));
  }

  /** Deletes the object; its dependents (ReplicaSets, pods) go in the background. */
  async delete(o: KubeObject): Promise<void> {
    await this.request('DELETE', `${await this.objectPath(o)}?propagationPolicy=Background`);
  }

  private async objectPath(o: KubeObject): Promise<string> {
    const r = await this.resource(o);
    if (!r) throw new KubernetesError(`the API server does not serve kind ${o.kind} of ${o.apiVersion}: check apiVersion and kind of ${o.kind} ${o.metadata.name}`);
    return `${collectionPath(o, r, o.metadata.namespace ?? 'default')}/${encodeURIComponent(o.metadata.name)}`;
  }

  private async resource(kind: Kind): Promise<{ name: string; namespaced: boolean } | undefined> {
    let kinds = this.discovery.get(kind.apiVersion);
    if (!kinds) {
      const at = kind.apiVersion.includes('/') ? `/apis/${kind.apiVersion}` : `/api/${kind.apiVersion}`;
      kinds = this.request('GET', at).then(
        (list) => new Map(((list as { resources?: { name: string; kind: string; namespaced: boolean }[] }).resources ?? []).filter((r) => !r.name.includes('/')).map((r) => [r.kind, r])),
        (e) => {
          if (apiStatusCode(e) === 404) return new Map();
          throw e;
        },
      );
      kinds.catch(() => this.discovery.delete(kind.apiVersion));
      this.discovery.set(kind.apiVersion, kinds);
    }
    return (await kinds).get(kind.kind);
  }

  /**
   * Follows a text stream of the API server (a pod's log with follow=true), giving each piece to
   * onText until it ends or the signal aborts. Resolves with the HTTP status (204: nothing to give).
   */
  async follow(urlPath: string, onText: (text: string) => void, signal: AbortSignal): Promise<number> {
    const res = await this.open('GET', urlPath, { signal });
    const code = res.statusCode ?? 0;
    if (code < 200 || code > 299) throw new ApiError(code, await readAll(res));
    return new Promise((resolve) => {
      res.setEncoding('utf8');
      res.on('data', onText);
      res.on('error', () => resolve(code));
      res.on('close', () => resolve(code));
    });
  }

  private async request(method: string, urlPath: string, body?: string, contentType = 'application/json'): Promise<unknown> {
    const res = await this.open(method, urlPath, { body, contentType, timeoutMs: 30_000 });
    const text = await readAll(res);
    const code = res.statusCode ?? 0;
    if (code < 200 || code > 299) throw new ApiError(code, text);
    try {
      return text ? JSON.parse(text) : {};
    } catch {
      throw new Error(`the API server answered ${method} ${urlPath} with something that is not JSON: ${text.slice(0, 200)}`);
    }
  }

  private async open(method: string, urlPath: string, o: { body?: string; contentType?: string; timeoutMs?: number; signal?: AbortSignal }): Promise<http.IncomingMessage> {
    const opts: https.RequestOptions = {
      method,
      signal: o.signal,
      timeout: o.timeoutMs,
      headers: { accept: 'application/json', ...(o.body ? { 'content-type': o.contentType ?? 'application/json' } : {}) },
    };
    await this.kc.applyToHTTPSOptions(opts);
    return new Promise((resolve, reject) => {
      const req = https.request(`${this.server.replace(/\/+$/, '')}${urlPath}`, opts, resolve);
      req.on('timeout', () => req.destroy(Object.assign(new Error(`${method} ${urlPath} got no answer within ${(o.timeoutMs ?? 0) / 1000} s`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(o.body);
    });
  }
}

function readAll(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

function collectionPath(kind: Kind, r: { name: string; namespaced: boolean }, namespace: string): string {
  const base = kind.apiVersion.includes('/') ? `/apis/${kind.apiVersion}` : `/api/${kind.apiVersion}`;
  return r.namespaced ? `${base}/namespaces/${encodeURIComponent(namespace)}/${r.name}` : `${base}/${r.name}`;
}

/** The API server's status code of an error, if it answered. */
export function apiStatusCode(e: unknown): number | undefined {
  const x = e as { code?: unknown; body?: unknown };
  return x && typeof x.code === 'number' && 'body' in x ? x.code : undefined;
}

interface ApiStatus {
  message?: string;
  reason?: string;
  details?: { name?: string; kind?: string; causes?: { field?: string; message?: string; reason?: string }[] };
}

function apiStatus(e: unknown): ApiStatus {
  const body = (e as { body?: unknown }).body;
  if (body && typeof body === 'object') return body as ApiStatus;
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as ApiStatus;
    } catch {
      return { message: body.trim() };
    }
  }
  return {};
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN', 'EPIPE']);
const TLS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/;

/**
 * One line for people from an error of the API clients: what failed (`what`: "Deployment web in
 * namespace staging") and how to fix it (401: the kubeconfig's user; 403: RBAC; 422: the field,
 * or `fix` when the caller knows where that field comes from).
 */
export function describeKubernetesError(e: unknown, origin: KubeClient['origin'] | undefined, what?: string, fix?: string): string {
  if (e instanceof KubernetesError) return e.message;
  const subject = what ? `${what}: ` : '';
  const code = apiStatusCode(e);
  const server = origin?.server ?? 'the API server';
  if (code !== undefined) {
    const s = apiStatus(e);
    const message = s.message ?? `HTTP ${code}`;
    switch (code) {
      case 401:
        return `${subject}the Kubernetes API server at ${server} rejected the credentials of the kubeconfig's user "${origin?.user}" (401 Unauthorized): check that user's token or client certificate in ${origin?.source ?? 'the kubeconfig'}`;
      case 403:
        return `${subject}${message} (403 Forbidden): the kubeconfig's user "${origin?.user}" lacks that RBAC permission; grant it with a Role and RoleBinding in the namespace, or use another user (${origin?.source ?? 'the kubeconfig'})`;
      case 422: {
        const causes = (s.details?.causes ?? []).filter((c) => c.message);
        const detail = causes.length ? causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message)).join('; ') : message;
        return `${subject}the API server rejected it (422 Invalid): ${detail}; ${fix ?? "fix that field (in the manifests, or the release's env, labels or environment name)"}`;
      }
      case 409:
        return `${subject}conflict (409): ${message}; someone changed the object at the same time: deploy again`;
      case 404:
        return `${subject}not found (404): ${message}`;
      default:
        return `${subject}the Kubernetes API server at ${server} answered ${code}${s.reason ? ` ${s.reason}` : ''}: ${message}`;
    }
  }
  const x = e as { code?: unknown; message?: string; cause?: { code?: unknown } };
  const errno = typeof x?.code === 'string' ? x.code : typeof x?.cause?.code === 'string' ? x.cause.code : undefined;
  if (errno && TLS.test(errno)) {
    return `${subject}the certificate of the Kubernetes API server at ${server} is not trusted (${errno}): check the cluster's certificate-authority in ${origin?.source ?? 'the kubeconfig'}`;
  }
  if (errno && UNREACHABLE.has(errno)) {
    return `${subject}cannot reach the Kubernetes API server at ${server} (${errno}): start the cluster, or check the server of context "${origin?.context}" in ${origin?.source ?? 'the kubeconfig'}`;
  }
  return `${subject}${x?.message ?? String(e)}`;
}

/**
 * A failure of apply() for people (describeKubernetesError), led by where to fix it as config
 * errors are (`file:line:col: `): for a field the API server rejected (422), the key of the
 * environment in conveyor.yml that made it (an `env:` entry, `replicas`, ...) or the field in the
 * user's manifest; for 401, 403 and 409, which carry no field, the environment's `kubernetes:`
 * key, where its kubeconfig and context are chosen.
 */
function describeApplyError(e: unknown, origin: KubeClient['origin'] | undefined, o: KubeObject | undefined, release: Release, locate: ApplyContext['locate']): string {
  if (e instanceof KubernetesError) return e.message;
  /** The first of the keys that conveyor.yml has. */
  const inConfig = (...keyPaths: string[][]): { where: string } | undefined => {
    for (const keyPath of keyPaths) {
      const p = locate?.(keyPath);
      if (p) return { where: `${p.file}:${p.line}:${p.column}` };
    }
    return undefined;
  };
  let at: { where: string; fix?: string } | undefined;
  switch (apiStatusCode(e)) {
    case 422:
      if (!o) break;
      for (const { field = '' } of apiStatus(e).details?.causes ?? []) {
        const key = configKeyOf(field, o, release);
        const written = key && inConfig(key.path);
        at = written ? { ...written, fix: key.fix } : manifestPosition(o, field);
        if (at) break;
      }
      break;
    case 401:
      at = inConfig(['kubernetes', 'kubeconfig'], ['kubernetes', 'context'], ['kubernetes'], []);
      break;
    case 403:
      at = inConfig(['kubernetes', 'context'], ['kubernetes', 'kubeconfig'], ['kubernetes', 'namespace'], ['kubernetes'], []);
      break;
    case 409:
      at = inConfig(['kubernetes', 'namespace'], ['kubernetes'], []);
      break;
  }
  const text = describeKubernetesError(e, origin, o && describeObject(o), at?.fix);
  return at ? `${at.where}: ${text}` : text;
}

/**
 * The key of the environment in conveyor.yml that made a field of `o` the API server rejected
 * (its path in the environment, and what to change), when Conveyor set that field: rendered
 * objects are made from the environment; in the user's manifests Conveyor sets the namespace and
 * the replicas. Undefined for what the manifests say.
 */
function configKeyOf(field: string, o: KubeObject, release: Release): { path: string[]; fix: string } | undefined {
  const rendered = !manifestSources.has(o);
  if (field === 'spec.replicas') return { path: ['replicas'], fix: 'fix replicas' };
  if (field === 'metadata.namespace') return { path: ['kubernetes', 'namespace'], fix: 'fix kubernetes.namespace' };
  if (!rendered) return undefined;
  const key = /^data\[(.*)\]$/.exec(field)?.[1];
  if (o.kind === 'ConfigMap' && key !== undefined && Object.prototype.hasOwnProperty.call(release.env, key)) return { path: ['env', key], fix: 'rename that variable under env:' };
  if (/\.ports\b/.test(field)) return { path: ['containerPort'], fix: 'fix containerPort' };
  if (/\.readinessProbe\b/.test(field)) return { path: ['health'], fix: 'fix health' };
  if (/\.args\b/.test(field)) return { path: ['start'], fix: 'fix start' };
  return undefined;
}

/** Where each object read from the user's manifests was written: its file, the file's text and the object's YAML node. */
const manifestSources = new WeakMap<KubeObject, { file: string; text: string; node: unknown }>();

/**
 * Where a field of an object of the user's manifests (an API field path:
 * `spec.template.spec.containers[0].name`) is written, as `file:line:col`: its value, or the
 * deepest part of the path the manifest has (a field Conveyor added is under it).
 */
function manifestPosition(o: KubeObject, field: string): { where: string; fix: string } | undefined {
  const source = manifestSources.get(o);
  if (!source) return undefined;
  let node = source.node;
  let at = (node as YamlNode | undefined)?.range?.[0] ?? 0;
  for (const segment of field.match(/[^.[\]]+|\[[^\]]*\]/g) ?? []) {
    const name = segment.startsWith('[') ? segment.slice(1, -1) : segment;
    let mark: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === name);
      if (!pair) break;
      node = pair.value;
      mark = isScalar(pair.value) ? pair.value : pair.key;
    } else if (isSeq(node) && /^\d+$/.test(name) && Number(name) < node.items.length) {
      node = mark = node.items[Number(name)];
    } else break;
    at = (mark as YamlNode | undefined)?.range?.[0] ?? at;
  }
  const before = source.text.slice(0, at).split('\n');
  return { where: `${source.file}:${before.length}:${before[before.length - 1].length + 1}`, fix: `fix that field in ${path.basename(source.file)}` };
}

/**
 * Makes the namespace if it does not exist. A user who may not read namespaces (403) is assumed
 * to work in one that exists.
 */
export async function ensureNamespace(c: KubeClient, namespace: string): Promise<void> {
  try {
    await c.core.readNamespace({ name: namespace });
    return;
  } catch (e) {
    const code = apiStatusCode(e);
    if (code === 403) return;
    if (code !== 404) throw e;
  }
  try {
    await c.core.createNamespace({ body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } } });
  } catch (e) {
    if (apiStatusCode(e) !== 409) throw e;
  }
}

// -- manifests -----------------------------------------------------------------------------------

/** What the rendered (or the user's) manifests are made from. */
export interface ManifestInput {
  release: Release;
  healthCheck: HealthCheck;
  secrets: Record<string, string>;
  namespace: string;
  strategy: DeployStrategy;
  labels?: Record<string, string>;
}

/**
 * `name` as a DNS label: lower case, each run of other characters a '-', no '-' at either end, at
 * most `max` characters; '' when nothing is left.
 */
export function dnsLabel(name: string, max: number): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max)
    .replace(/-+$/, '');
}

/** The name of the rendered objects: the environment's name as a DNS label. */
export function objectName(environment: string): string {
  const slug = dnsLabel(environment, 40);
  if (slug === environment) return slug;
  // Two names that slug alike ("Web", "web") still get two sets of objects.
  return `${slug || 'env'}-${createHash('sha256').update(environment).digest('hex').slice(0, 6)}`;
}

/**
 * Renders the release as a Deployment (the image by digest, `replicas`, the health check as its
 * readiness probe), a Service on the container port, a ConfigMap with the release's variables and
 * PORT, and a Secret with the secrets when there are any. Names carry the release number where
 * pods of two releases must not share them (ConfigMap, Secret).
 */
export function renderManifests(input: ManifestInput): KubeObject[] {
  const { release, healthCheck, secrets, namespace, strategy } = input;
  const name = objectName(release.environment);
  const labels = objectLabels(input);
  const annotations = objectAnnotations(input);
  const configName = `${name}-env-${release.number}`;
  const secretName = `${name}-secrets-${release.number}`;
  const hasSecrets = Object.keys(secrets).length > 0;
  const container: V1Container = {
    name: 'app',
    image: imageRef(release),
    ports: [{ name: 'http', containerPort: release.containerPort, protocol: 'TCP' }],
    envFrom: [{ configMapRef: { name: configName } }, ...(hasSecrets ? [{ secretRef: { name: secretName } }] : [])],
    readinessProbe: readinessProbe(healthCheck, release.containerPort),
  };
  if (release.command.length) container.args = release.command;
  const objects: KubeObject[] = [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: configName, namespace, labels, annotations },
      data: { ...release.env, PORT: String(release.containerPort) },
    } as KubeObject,
  ];
  if (hasSecrets) {
    objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: secretName, namespace, labels }, type: 'Opaque', stringData: { ...secrets } } as KubeObject);
  }
  const selector = { [LABEL.managed]: 'true', [LABEL.environment]: release.environment };
  objects.push(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace, labels, annotations },
      // The protocol is required here: server-side apply of a port without one fails (500) on some API servers.
      spec: { type: 'ClusterIP', selector, ports: [{ name: 'http', port: release.containerPort, targetPort: release.containerPort, protocol: 'TCP' }] },
    } as KubeObject,
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace, labels, annotations },
      spec: {
        replicas: Math.max(1, release.replicas),
        selector: { matchLabels: selector },
        strategy: strategy === 'recreate' ? { type: 'Recreate' } : { type: 'RollingUpdate', rollingUpdate: { maxSurge: '100%', maxUnavailable: 0 } },
        template: {
          metadata: { labels: podLabels(input), annotations: { ...annotations, [ANNOTATION.container]: 'app' } },
          spec: { containers: [container] },
        },
      },
    } as KubeObject,
  );
  return objects;
}

/**
 * Reads the user's manifests (YAML files, or folders of them, in name order) and makes them the
 * release's: each object goes into the environment's namespace with Conveyor's labels, each pod
 * template gets them too, and the container that runs the release's repository (or the only one,
 * or the one the `conveyor.container` annotation names) gets the release's image, its variables
 * (ConfigMap, Secret) and its command. Deployments and StatefulSets get the release's replicas, as
 * on every runtime (so live state and drift compare like with like). Throws a message naming the
 * file and the problem.
 */
export function loadManifests(paths: string[], input: ManifestInput): KubeObject[] {
  const files: string[] = [];
  for (const p of paths) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch {
      throw new KubernetesSettingsError(`the manifests path ${p} (settings.kubernetes.manifests) does not exist`);
    }
    if (stat.isDirectory()) {
      const found = fs
        .readdirSync(p)
        .filter((f) => /\.(ya?ml|json)$/i.test(f))
        .sort()
        .map((f) => path.join(p, f));
      if (!found.length) throw new KubernetesSettingsError(`the manifests folder ${p} holds no .yaml, .yml or .json file`);
      files.push(...found);
    } else files.push(p);
  }
  const objects: ManifestObject[] = [];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const docs = parseAllDocuments(text, { prettyErrors: true });
    for (const doc of Array.isArray(docs) ? docs : [docs]) {
      const line = doc.range ? text.slice(0, doc.range[0]).split('\n').length : 1;
      if (doc.errors.length) throw new KubernetesSettingsError(`${file}:${line}: not valid YAML: ${doc.errors[0].message}`);
      const value = doc.toJS() as unknown;
      if (value === null || value === undefined) continue;
      const list = isObject(value) && value.kind === 'List' && Array.isArray(value.items);
      const items = list ? (value.items as unknown[]) : [value];
      for (const [i, item] of items.entries()) {
        const where = `${file}:${line}`;
        if (!isObject(item) || typeof item.apiVersion !== 'string' || typeof item.kind !== 'string' || !isObject(item.metadata) || typeof item.metadata.name !== 'string') {
          throw new KubernetesSettingsError(`${where}: a manifest needs apiVersion, kind and metadata.name`);
        }
        objects.push({ object: item, where, source: { file, text, node: list ? doc.getIn(['items', i], true) : doc.contents } });
      }
    }
  }
  if (!objects.length) throw new KubernetesSettingsError(`the manifests (${paths.join(', ')}) hold no object`);
  return customize(objects, input);
}

/** An object of the user's manifests, and where it was written. */
interface ManifestObject {
  object: Record<string, any>;
  /** file:line of its document. */
  where: string;
  source: { file: string; text: string; node: unknown };
}

function customize(list: ManifestObject[], input: ManifestInput): KubeObject[] {
  const { release, secrets, namespace } = input;
  const base = objectName(release.environment);
  const configName = `${base}-env-${release.number}`;
  const secretName = `${base}-secrets-${release.number}`;
  const hasSecrets = Object.keys(secrets).length > 0;
  const out: KubeObject[] = [];
  let templates = 0;
  for (const { object, where, source } of list) {
    const o = structuredClone(object);
    manifestSources.set(o as KubeObject, source);
    const what = `${o.kind} ${o.metadata.name} (${where})`;
    if (CLUSTER_SCOPED.has(o.kind)) throw new KubernetesSettingsError(`${what} is cluster-scoped: Conveyor applies only namespaced objects; apply it yourself`);
    if (o.metadata.namespace && o.metadata.namespace !== namespace) {
      throw new KubernetesSettingsError(`${what} names namespace "${o.metadata.namespace}" but the environment deploys to "${namespace}": remove metadata.namespace, or set settings.kubernetes.namespace`);
    }
    o.metadata.namespace = namespace;
    o.metadata.labels = { ...o.metadata.labels, ...objectLabels(input) };
    o.metadata.annotations = { ...o.metadata.annotations, ...objectAnnotations(input) };
    if (o.kind === 'Service') {
      for (const port of o.spec?.ports ?? []) port.protocol ??= 'TCP';
    }
    if (o.kind === 'Deployment' || o.kind === 'StatefulSet') o.spec = { ...o.spec, replicas: Math.max(1, release.replicas) };
    const template = podTemplateOf(o);
    if (template) {
      templates++;
      template.metadata = template.metadata ?? {};
      template.metadata.labels = { ...template.metadata.labels, ...podLabels(input) };
      const spec = (template.spec ?? {}) as V1PodSpec;
      const containers = spec.containers ?? [];
      const target = targetContainer(o, containers, release, what);
      template.metadata.annotations = { ...template.metadata.annotations, ...objectAnnotations(input), [ANNOTATION.container]: target.name };
      target.image = imageRef(release);
      target.envFrom = [{ configMapRef: { name: configName } }, ...(hasSecrets ? [{ secretRef: { name: secretName } }] : []), ...(target.envFrom ?? [])];
      if (release.command.length) target.args = release.command;
      for (const c of [...containers, ...(spec.initContainers ?? [])]) for (const port of c.ports ?? []) port.protocol ??= 'TCP';
    }
    out.push(o as KubeObject);
  }
  if (!templates) throw new KubernetesSettingsError(`the manifests hold no workload (Deployment, StatefulSet, DaemonSet, Job or CronJob) to run the release's image in`);
  out.unshift(
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: configName, namespace, labels: objectLabels(input) }, data: { ...release.env, PORT: String(release.containerPort) } } as KubeObject,
    ...(hasSecrets ? [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: secretName, namespace, labels: objectLabels(input) }, type: 'Opaque', stringData: { ...secrets } } as KubeObject] : []),
  );
  return out;
}

function targetContainer(o: Record<string, any>, containers: V1Container[], release: Release, what: string): V1Container {
  if (!containers.length) throw new KubernetesSettingsError(`${what} has no containers`);
  const named = o.metadata.annotations?.[ANNOTATION.container] as string | undefined;
  if (named) {
    const c = containers.find((x) => x.name === named);
    if (!c) throw new KubernetesSettingsError(`${what}: the annotation ${ANNOTATION.container} names container "${named}", which it does not have (${containers.map((x) => x.name).join(', ')})`);
    return c;
  }
  if (containers.length === 1) return containers[0];
  const repository = (release.artifact as { repository?: string }).repository;
  const same = containers.filter((c) => repositoryOf(c.image ?? '') === repository);
  if (same.length === 1) return same[0];
  throw new KubernetesSettingsError(
    `${what} has ${containers.length} containers (${containers.map((c) => c.name).join(', ')}) and Conveyor cannot tell which runs ${repository}: add the annotation ${ANNOTATION.container}: <name> to it`,
  );
}

function podTemplateOf(o: Record<string, any>): { metadata?: Record<string, any>; spec?: V1PodSpec } | undefined {
  if (WORKLOADS.has(o.kind)) return (o.spec ??= {}).template ?? (o.spec.template = {});
  if (o.kind === 'CronJob') return (((o.spec ??= {}).jobTemplate ??= {}).spec ??= {}).template ?? (o.spec.jobTemplate.spec.template = {});
  return undefined;
}

function objectLabels(input: ManifestInput): Record<string, string> {
  return { ...input.labels, [LABEL.managed]: 'true', [LABEL.environment]: input.release.environment, [LABEL.release]: String(input.release.number) };
}

function podLabels(input: ManifestInput): Record<string, string> {
  const { release } = input;
  const labels: Record<string, string> = { ...objectLabels(input), [LABEL.containerPort]: String(release.containerPort) };
  if (release.runId !== null) labels[LABEL.run] = String(release.runId);
  if (release.commit) labels[LABEL.commit] = release.commit;
  return labels;
}

function objectAnnotations(input: ManifestInput): Record<string, string> {
  const artifact = input.release.artifact as { digest: string; repository?: string };
  return { [ANNOTATION.digest]: artifact.digest, [ANNOTATION.repository]: artifact.repository ?? '', [ANNOTATION.health]: JSON.stringify(input.healthCheck) };
}

function imageRef(release: Release): string {
  const a = release.artifact as { repository: string; digest: string };
  return `${a.repository}@${a.digest}`;
}

/** "registry:5000/app:1", "registry:5000/app@sha256:..." → "registry:5000/app". */
function repositoryOf(image: string): string {
  const at = image.indexOf('@');
  const noDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

function readinessProbe(check: HealthCheck, port: number): V1Container['readinessProbe'] {
  const periodSeconds = Math.max(1, Math.round(check.intervalMs / 1000));
  switch (check.kind) {
    case 'http':
      return { httpGet: { path: check.path, port }, periodSeconds, failureThreshold: 3 };
    case 'tcp':
      return { tcpSocket: { port }, periodSeconds, failureThreshold: 3 };
    case 'command':
      return { exec: { command: ['sh', '-c', check.command] }, periodSeconds, failureThreshold: 3 };
  }
}

// -- the runtime ---------------------------------------------------------------------------------

/**
 * The `kubernetes` runtime: a release becomes a Deployment, a Service and a ConfigMap (or the
 * user's manifests with the release's image), applied server-side with the field manager
 * `conveyor` into the environment's namespace. The cluster is the record: observe() reads the
 * pods back by their labels, so nothing is lost when the agent restarts.
 *
 * Traffic: the agent does not route the environment's public port (127.0.0.1:PORT) to a pod.
 * Pod addresses live in the cluster's network, which the agent's machine usually cannot reach:
 * users reach a kubernetes environment through its Service (and whatever Ingress, NodePort or
 * LoadBalancer the manifests declare), so apply() never calls services.route and instances have
 * no address. Health comes from the API (the pods' readiness, which the kubelet checks with the
 * environment's health check as the readiness probe), not from probes sent by the agent.
 *
 * apply() waits for the rollout of Deployments; other workloads of the user's manifests
 * (StatefulSet, DaemonSet, Job, CronJob) are applied and not waited for.
 */
export class KubernetesRuntime implements Runtime {
  readonly name = 'kubernetes' as const;
  private readonly applying = new InFlight();
  private readonly watchers = new DisposableSet();
  private readonly clients = new Map<string, { stamp: string; client: Promise<KubeClient> }>();

  constructor(private readonly settings: KubernetesRuntimeSettings | ((environment: string) => KubernetesRuntimeSettings) = {}) {}

  // -- apply ---------------------------------------------------------------------------------

  /**
   * Applies the release and waits for its rollout (the health check's timeout). When it fails, is
   * cancelled or times out, the previous release's objects are applied again and the new ones
   * deleted. On success, the environment's other objects with Conveyor's labels are pruned.
   */
  async apply(desired: DesiredState, strategy: DeployStrategy, ctx: ApplyContext): Promise<ApplyResult> {
    const { release } = desired;
    const env = release.environment;
    if (release.artifact.kind !== 'image') {
      return fail(`the kubernetes runtime deploys images; ${env}@${release.number} is a files artifact (${release.artifact.name}): build an image (a stage of kind image) and deploy that`, '', false);
    }
    if (!LABEL_VALUE.test(env)) {
      // Every object carries it, and every list selects by it (selectorOf): the API server would refuse both.
      const at = ctx.locate?.([]);
      return fail(
        `${at ? `${at.file}:${at.line}:${at.column}: ` : ''}the environment's name "${env}" is not a valid Kubernetes label value, and it is the value of the label ${LABEL.environment} on its objects: rename the environment: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
        '',
        false,
      );
    }
    const endApply = this.applying.begin(env);
    let c: KubeClient | undefined;
    const explain = (e: unknown, o?: KubeObject) => describeApplyError(e, c?.origin, o, release, ctx.locate);
    try {
      const settings = this.settingsFor(env);
      c = await this.client(env);
      const ns = c.namespace;
      const input: ManifestInput = { release, healthCheck: desired.healthCheck, secrets: desired.secrets, namespace: ns, strategy, labels: settings.labels };
      let objects: KubeObject[];
      if (settings.manifests) {
        ctx.progress(`reading the manifests in ${settings.manifests.join(', ')}`);
        objects = loadManifests(settings.manifests, input);
      } else objects = renderManifests(input);
      objects.sort((a, b) => applyOrder(a) - applyOrder(b));

      await ensureNamespace(c, ns);
      const previous = await this.managedObjects(c, env, kindsOf(objects));
      const hadPrevious = previous.some(isWorkload);
      ctx.progress(`validating ${objects.length} objects in namespace ${ns} (server-side dry run)`);
      for (const o of objects) {
        try {
          await c.objects.apply(o, true);
        } catch (e) {
          // Nothing changed yet: the previous release still runs as it did.
          return fail(explain(e, o), '', hadPrevious);
        }
      }
      ctx.progress(`applying ${objects.map(describeObject).join(', ')} (server-side apply, field manager ${FIELD_MANAGER})`);
      let outcome: Outcome;
      try {
        for (const o of objects) await this.applyOne(c, o, explain);
        outcome = await waitRollout(c, env, release.number, objects.filter(isDeployment).map(nameOf), desired.healthCheck.timeoutMs, ctx.signal, ctx.progress);
      } catch (e) {
        outcome = { ok: false, reason: explain(e), log: '' };
      }
      if (outcome.ok && ctx.signal.aborted) outcome = { ok: false, reason: 'cancelled', log: '' };
      if (outcome.ok) {
        await this.prune(c, env, objects, kindsOf(objects), ctx);
        ctx.progress(`release ${release.number} is rolled out in namespace ${ns}`);
        return { ok: true, live: await this.observe(env) };
      }
      const log = outcome.reason === 'cancelled' ? '' : await diagnostics(c, env, release.number, objects.filter(isDeployment).map(nameOf));
      const restored = await this.restore(c, env, release.number, previous, objects, desired.healthCheck.timeoutMs, ctx);
      return fail(outcome.reason, [outcome.log, log].filter(Boolean).join('\n'), restored);
    } catch (e) {
      return fail(explain(e), '', false);
    } finally {
      endApply();
    }
  }

  /**
   * Applies the object server-side, then removes what other field managers set in the fields
   * Conveyor holds whole (a variable added to its container by hand: server-side apply leaves
   * it, as the manifest does not name it), by replacing the object as the apply left it without
   * them, at that resourceVersion. When the object changed in between (409), both again.
   * A failure is said by `explain` (default: describeKubernetesError).
   */
  private async applyOne(c: KubeClient, o: KubeObject, explain = (e: unknown, x: KubeObject) => describeKubernetesError(e, c.origin, describeObject(x))): Promise<void> {
    try {
      for (let attempt = 1; ; attempt++) {
        const live = await c.objects.apply(o);
        const mine = withoutOthersFields(live, FIELD_MANAGER);
        if (!mine) return;
        try {
          await c.objects.replace(mine);
          return;
        } catch (e) {
          if (apiStatusCode(e) !== 409 || attempt >= REPLACE_ATTEMPTS) throw e;
        }
      }
    } catch (e) {
      throw new KubernetesError(explain(e, o));
    }
  }

  /**
   * After a failed rollout: applies the previous release's objects again and deletes what the
   * failed release added; with no previous release, deletes the failed release's objects.
   * Resolves whether the previous release is rolled out again.
   */
  private async restore(c: KubeClient, env: string, failed: number, previous: KubeObject[], applied: KubeObject[], timeoutMs: number, ctx: ApplyContext): Promise<boolean> {
    const workload = previous.find(isWorkload);
    const release = Number(workload?.metadata.labels?.[LABEL.release]);
    try {
      if (!workload) {
        ctx.progress('deleting the failed release (there is no previous release to restore)');
        await this.deleteObjects(c, applied);
        return false;
      }
      ctx.progress(`restoring release ${Number.isFinite(release) ? release : '?'}`);
      const again = previous.map((o) => ownedFields(o, FIELD_MANAGER)).filter((o): o is KubeObject => o !== undefined);
      for (const o of again) await this.applyOne(c, o);
      const keep = new Set(previous.map(objectKey));
      await this.deleteObjects(c, applied.filter((o) => !keep.has(objectKey(o))));
      const outcome = await waitRollout(c, env, release, again.filter(isDeployment).map(nameOf), timeoutMs, AbortSignal.timeout(timeoutMs + 5000), () => undefined);
      // Failed pods are not scaled away with their ReplicaSet: delete what is left of the failed release.
      if (failed !== release) await c.core.deleteCollectionNamespacedPod({ namespace: c.namespace, labelSelector: `${selectorOf(env)},${LABEL.release}=${failed}` });
      if (outcome.ok) ctx.progress(`release ${release} serves again`);
      else ctx.progress(`release ${release} did not roll out again: ${outcome.reason}`);
      return outcome.ok;
    } catch (e) {
      ctx.progress(`could not restore the previous release: ${describeKubernetesError(e, c.origin)}`);
      return false;
    }
  }

  /** Deletes the environment's objects with Conveyor's labels that the release does not have. */
  private async prune(c: KubeClient, env: string, desired: KubeObject[], kinds: Kind[], ctx: ApplyContext): Promise<void> {
    const keep = new Set(desired.map(objectKey));
    const extra = (await this.managedObjects(c, env, kinds)).filter((o) => !keep.has(objectKey(o)));
    if (!extra.length) return;
    ctx.progress(`pruning ${extra.map(describeObject).join(', ')}`);
    await this.deleteObjects(c, extra);
  }

  private async deleteObjects(c: KubeClient, objects: KubeObject[]): Promise<void> {
    for (const o of objects) {
      try {
        await c.objects.delete(o);
      } catch (e) {
        if (apiStatusCode(e) !== 404) throw new KubernetesError(describeKubernetesError(e, c.origin, `deleting ${describeObject(o)}`));
      }
    }
  }

  /** The environment's objects with Conveyor's labels, of the kinds Conveyor applies (not those controllers made). */
  private async managedObjects(c: KubeClient, env: string, extraKinds: Kind[] = []): Promise<KubeObject[]> {
    const kinds = uniqueKinds([...PRUNABLE, ...extraKinds]).filter((k) => k.kind !== 'PersistentVolumeClaim');
    const out: KubeObject[] = [];
    for (const k of kinds) {
      // Undefined: a kind this API server does not serve (an API group it lacks).
      const items = await c.objects.list(k, c.namespace, selectorOf(env));
      for (const item of items ?? []) if (!item.metadata.ownerReferences?.length) out.push(item);
    }
    return out;
  }

  // -- observe, health, watch, remove --------------------------------------------------------

  async observe(environment: string): Promise<LiveState> {
    const c = await this.client(environment);
    try {
      const [pods, configMaps] = await Promise.all([
        c.core.listNamespacedPod({ namespace: c.namespace, labelSelector: selectorOf(environment) }),
        c.core.listNamespacedConfigMap({ namespace: c.namespace, labelSelector: selectorOf(environment) }),
      ]);
      const data = new Map(configMaps.items.map((m) => [m.metadata?.name ?? '', m.data ?? {}]));
      const instances = pods.items
        .filter((p) => !p.metadata?.deletionTimestamp)
        .map((p) => toInstance(p, environment, data))
        .sort((a, b) => a.release - b.release || a.id.localeCompare(b.id));
      return { environment, instances };
    } catch (e) {
      throw new KubernetesError(describeKubernetesError(e, c.origin, `reading the pods of ${environment} in namespace ${c.namespace}`));
    }
  }

  async health(environment: string): Promise<HealthStatus> {
    if (this.applying.has(environment)) return 'Progressing';
    const c = await this.client(environment);
    let deployments: V1Deployment[];
    let pods: V1Pod[];
    try {
      [deployments, pods] = await Promise.all([
        c.apps.listNamespacedDeployment({ namespace: c.namespace, labelSelector: selectorOf(environment) }).then((l) => l.items),
        c.core.listNamespacedPod({ namespace: c.namespace, labelSelector: selectorOf(environment) }).then((l) => l.items.filter((p) => !p.metadata?.deletionTimestamp)),
      ]);
    } catch (e) {
      throw new KubernetesError(describeKubernetesError(e, c.origin, `reading the health of ${environment} in namespace ${c.namespace}`));
    }
    if (!deployments.length && !pods.length) return 'Missing';
    const release = Math.max(...[...deployments, ...pods].map((o) => Number(o.metadata?.labels?.[LABEL.release])).filter(Number.isFinite));
    const current = pods.filter((p) => Number(p.metadata?.labels?.[LABEL.release]) === release);
    if (current.some((p) => podProblem(p) !== null)) return 'Degraded';
    const states = deployments.map(rolloutState);
    if (states.some((s) => s.failed)) return 'Degraded';
    if (states.every((s) => s.done) && current.every(isReady)) return 'Healthy';
    // Not rolled out: Progressing while the health check's time has not run out, then Degraded.
    const timeoutMs = Math.max(0, ...deployments.map(timeoutOf));
    const waiting = current.filter((p) => !isReady(p));
    const since = waiting.length
      ? Math.min(...waiting.map((p) => p.metadata?.creationTimestamp?.getTime() ?? 0))
      : Math.max(0, ...deployments.map((d) => d.metadata?.creationTimestamp?.getTime() ?? 0), ...deployments.flatMap((d) => (d.status?.conditions ?? []).map((x) => x.lastUpdateTime?.getTime() ?? 0)));
    return Date.now() - since < (timeoutMs || DEFAULT_TIMEOUT_MS) ? 'Progressing' : 'Degraded';
  }

  /**
   * Watches the environment's Deployments and Pods and calls onChange (debounced) on each change.
   * A watch that ends (the server closes them after a while, or the connection broke) is opened
   * again from a fresh list, with back-off, and onChange is called since changes may have been missed.
   */
  watch(environment: string, onChange: () => void): IDisposable {
    let disposed = false;
    const debounce = new Debouncer(onChange, DEFAULT_DEBOUNCE_MS);
    const stops: (() => void)[] = [];
    const follow = (resource: 'pods' | 'deployments') => {
      let controller: AbortController | undefined;
      const retry = new Backoff(() => void connect(true));
      const connect = async (reconnecting: boolean) => {
        try {
          debounce.delayMs = this.settingsFor(environment).debounceMs ?? DEFAULT_DEBOUNCE_MS;
          const c = await this.client(environment);
          const labelSelector = selectorOf(environment);
          const list =
            resource === 'pods'
              ? await c.core.listNamespacedPod({ namespace: c.namespace, labelSelector })
              : await c.apps.listNamespacedDeployment({ namespace: c.namespace, labelSelector });
          if (disposed) return;
          const base = resource === 'pods' ? `/api/v1/namespaces/${c.namespace}/pods` : `/apis/apps/v1/namespaces/${c.namespace}/deployments`;
          const watcher = new c.k8s.Watch(c.kc);
          let ended = false;
          let ctl: AbortController | undefined;
          ctl = await watcher.watch(
            base,
            { labelSelector, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
            (phase) => {
              if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') debounce.trigger();
            },
            () => {
              if (ended) return;
              ended = true;
              if (ctl && controller === ctl) controller = undefined;
              retry.schedule();
            },
          );
          if (disposed) {
            ctl.abort();
            return;
          }
          controller = ctl;
          retry.reset();
          if (reconnecting) debounce.trigger();
        } catch {
          retry.schedule();
        }
      };
      void connect(false);
      stops.push(() => {
        retry.dispose();
        controller?.abort();
      });
    };
    follow('deployments');
    follow('pods');
    return this.watchers.add(
      toDisposable(() => {
        disposed = true;
        debounce.dispose();
        for (const stop of stops) stop();
      }),
    );
  }

  /** Deletes every object of the environment with Conveyor's labels; the cluster's garbage collector removes their pods. */
  async remove(environment: string): Promise<void> {
    const c = await this.client(environment);
    try {
      await this.deleteObjects(c, await this.managedObjects(c, environment));
    } catch (e) {
      throw new KubernetesError(describeKubernetesError(e, c.origin, `removing ${environment} from namespace ${c.namespace}`));
    }
  }

  /** Deletes the named pods of the environment (the Deployment's ReplicaSet starts others). */
  async removeInstances(environment: string, ids: string[]): Promise<void> {
    const c = await this.client(environment);
    const mine = new Set((await this.observe(environment)).instances.map((i) => i.id));
    for (const id of ids.filter((x) => mine.has(x))) {
      try {
        await c.core.deleteNamespacedPod({ name: id, namespace: c.namespace });
      } catch (e) {
        if (apiStatusCode(e) !== 404) throw new KubernetesError(describeKubernetesError(e, c.origin, `deleting pod ${id}`));
      }
    }
  }

  dispose(): void {
    this.watchers.dispose();
  }

  private settingsFor(environment: string): KubernetesRuntimeSettings {
    return typeof this.settings === 'function' ? this.settings(environment) : this.settings;
  }

  /** The environment's client, made again when its settings or kubeconfig file change. */
  private client(environment: string): Promise<KubeClient> {
    const s = this.settingsFor(environment);
    const file = s.kubeconfig ?? process.env.KUBECONFIG ?? path.join(os.homedir(), '.kube', 'config');
    let mtime = 0;
    try {
      mtime = fs.statSync(file).mtimeMs;
    } catch {
      // connectKubernetes says what is missing
    }
    const stamp = JSON.stringify([s.kubeconfig, s.context, s.namespace, process.env.KUBECONFIG, mtime]);
    const kept = this.clients.get(environment);
    if (kept && kept.stamp === stamp) return kept.client;
    const made = connectKubernetes(s);
    made.catch(() => {
      if (this.clients.get(environment)?.client === made) this.clients.delete(environment);
    });
    this.clients.set(environment, { stamp, client: made });
    return made;
  }
}

// -- rollouts ------------------------------------------------------------------------------------

type Outcome = { ok: true } | { ok: false; reason: string; log: string };

interface RolloutState {
  done: boolean;
  failed: boolean;
  message: string;
}

/** kubectl rollout status's reading of a Deployment. */
function rolloutState(d: V1Deployment): RolloutState {
  const name = d.metadata?.name ?? '?';
  const replicas = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  if ((s.observedGeneration ?? 0) < (d.metadata?.generation ?? 0)) return { done: false, failed: false, message: `Deployment ${name}: waiting for the controller to see the new spec` };
  const progressing = s.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') return { done: false, failed: true, message: `Deployment ${name} exceeded its progress deadline: ${progressing.message ?? ''}` };
  const stuck = s.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  if (stuck) return { done: false, failed: true, message: `Deployment ${name} cannot create pods: ${stuck.message ?? stuck.reason}` };
  const updated = s.updatedReplicas ?? 0;
  const available = s.availableReplicas ?? 0;
  if (updated < replicas) return { done: false, failed: false, message: `Deployment ${name}: ${updated} of ${replicas} new replicas updated, ${available} available` };
  if ((s.replicas ?? 0) > updated) return { done: false, failed: false, message: `Deployment ${name}: ${(s.replicas ?? 0) - updated} old replicas pending termination` };
  if (available < replicas) return { done: false, failed: false, message: `Deployment ${name}: ${available} of ${replicas} replicas available` };
  return { done: true, failed: false, message: `Deployment ${name}: ${available} of ${replicas} replicas available` };
}

/**
 * Waits until each Deployment is rolled out (observedGeneration ≥ generation, every replica
 * updated and available, no old one left) and stops early when a pod of the release fails.
 */
async function waitRollout(c: KubeClient, env: string, release: number, deployments: string[], timeoutMs: number, signal: AbortSignal, progress: (m: string) => void): Promise<Outcome> {
  const deadline = Date.now() + timeoutMs;
  let said = '';
  if (deployments.length) progress(`waiting for the rollout (up to ${Math.round(timeoutMs / 1000)}s)`);
  for (;;) {
    if (signal.aborted) return { ok: false, reason: 'cancelled', log: '' };
    const states = await Promise.all(deployments.map(async (name) => rolloutState(await c.apps.readNamespacedDeployment({ name, namespace: c.namespace }))));
    const pods = Number.isFinite(release) ? (await c.core.listNamespacedPod({ namespace: c.namespace, labelSelector: `${selectorOf(env)},${LABEL.release}=${release}` })).items : [];
    for (const p of pods) {
      const problem = podProblem(p);
      if (problem) return { ok: false, reason: `release ${release} failed: pod ${p.metadata?.name}: ${problem}`, log: '' };
    }
    const failed = states.find((s) => s.failed);
    if (failed) return { ok: false, reason: `release ${release} failed: ${failed.message}`, log: '' };
    const message = states.map((s) => s.message).join('; ');
    if (message !== said) {
      said = message;
      if (message) progress(message);
    }
    if (states.every((s) => s.done)) return { ok: true };
    if (Date.now() > deadline) return { ok: false, reason: `release ${release} was not rolled out within ${Math.round(timeoutMs / 1000)}s: ${message}`, log: '' };
    await sleep(ROLLOUT_POLL_MS, signal);
  }
}

/** Why a pod cannot serve, if it cannot: its phase is Failed, or a container waits for a reason that does not pass by itself. */
function podProblem(p: V1Pod): string | null {
  const statuses = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])];
  if (p.status?.phase === 'Failed') {
    const ended = statuses.find((s) => s.state?.terminated && s.state.terminated.exitCode !== 0)?.state?.terminated;
    const why = ended ? `exit code ${ended.exitCode}${ended.reason ? ` (${ended.reason})` : ''}` : (p.status.message ?? p.status.reason ?? 'no reason given');
    return `phase Failed: ${why}`;
  }
  for (const s of statuses) {
    const w = s.state?.waiting;
    if (w?.reason && FATAL_WAITING.has(w.reason)) return `container ${s.name}: ${w.reason}${w.message ? `: ${w.message}` : ''}`;
  }
  return null;
}

function isReady(p: V1Pod): boolean {
  return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** What a failed rollout leaves to read: the Deployments' conditions, each pod's state, their events and logs. */
async function diagnostics(c: KubeClient, env: string, release: number, deployments: string[]): Promise<string> {
  const lines: string[] = [];
  const names = new Set(deployments);
  try {
    for (const name of deployments) {
      const d = await c.apps.readNamespacedDeployment({ name, namespace: c.namespace });
      for (const cond of d.status?.conditions ?? []) lines.push(`Deployment ${name}: ${cond.type}=${cond.status}${cond.reason ? ` ${cond.reason}` : ''}${cond.message ? `: ${cond.message}` : ''}`);
    }
    const pods = (await c.core.listNamespacedPod({ namespace: c.namespace, labelSelector: `${selectorOf(env)},${LABEL.release}=${release}` })).items;
    for (const p of pods) {
      const name = p.metadata?.name ?? '?';
      names.add(name);
      const conds = (p.status?.conditions ?? []).map((x) => `${x.type}=${x.status}${x.reason ? ` (${x.reason}${x.message ? `: ${x.message}` : ''})` : ''}`).join(', ');
      lines.push(`pod ${name}: phase ${p.status?.phase ?? '?'}${conds ? `; ${conds}` : ''}`);
      for (const s of p.status?.containerStatuses ?? []) {
        const st = s.state?.waiting ? `waiting ${s.state.waiting.reason ?? ''}${s.state.waiting.message ? `: ${s.state.waiting.message}` : ''}` : s.state?.terminated ? `terminated, exit code ${s.state.terminated.exitCode}${s.state.terminated.reason ? ` (${s.state.terminated.reason})` : ''}` : 'running';
        lines.push(`  container ${s.name}: ${st}, ${s.restartCount} restarts`);
      }
    }
    const events = (await c.core.listNamespacedEvent({ namespace: c.namespace })).items
      .filter((e) => names.has(e.involvedObject.name ?? '') || [...names].some((n) => (e.involvedObject.name ?? '').startsWith(`${n}-`)))
      .slice(-20);
    if (events.length) lines.push('events:');
    for (const e of events) lines.push(`  ${e.type ?? ''} ${e.reason ?? ''} ${e.involvedObject.kind}/${e.involvedObject.name}: ${e.message ?? ''}${(e.count ?? 1) > 1 ? ` (x${e.count})` : ''}`);
    for (const p of pods.filter((x) => podProblem(x) !== null).slice(0, 2)) {
      const container = p.metadata?.annotations?.[ANNOTATION.container] ?? p.spec?.containers[0]?.name;
      const text = await c.core.readNamespacedPodLog({ name: p.metadata?.name ?? '', namespace: c.namespace, container, tailLines: 50 }).catch(() => '');
      if (text) lines.push(`last log lines of pod ${p.metadata?.name}:`, text.trimEnd());
    }
  } catch (e) {
    lines.push(`(could not read everything: ${describeKubernetesError(e, c.origin)})`);
  }
  return lines.join('\n');
}

// -- objects -------------------------------------------------------------------------------------

interface Kind {
  apiVersion: string;
  kind: string;
}

/** The kinds Conveyor looks for when it prunes and removes (besides the kinds in the manifests). PersistentVolumeClaims are never pruned: their data would go. */
const PRUNABLE: Kind[] = [
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'apps/v1', kind: 'StatefulSet' },
  { apiVersion: 'apps/v1', kind: 'DaemonSet' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'Secret' },
  { apiVersion: 'v1', kind: 'ServiceAccount' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' },
  { apiVersion: 'autoscaling/v1', kind: 'HorizontalPodAutoscaler' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' },
];

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'PersistentVolume',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'StorageClass',
  'PriorityClass',
  'IngressClass',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
  'APIService',
  'CSIDriver',
  'RuntimeClass',
  'PodSecurityPolicy',
]);

/** Container states that do not pass by waiting: the rollout has failed. */
const FATAL_WAITING = new Set(['CrashLoopBackOff', 'ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit. */
const LABEL_VALUE = /^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_DEBOUNCE_MS = 250;
const ROLLOUT_POLL_MS = 500;
/** How often applyOne applies and replaces again when a controller changed the object in between. */
const REPLACE_ATTEMPTS = 5;

function selectorOf(environment: string): string {
  return `${LABEL.managed}=true,${LABEL.environment}=${environment}`;
}

function applyOrder(o: KubeObject): number {
  const order = ['ConfigMap', 'Secret', 'ServiceAccount', 'Role', 'RoleBinding', 'PersistentVolumeClaim', 'Service'];
  const i = order.indexOf(o.kind ?? '');
  return i >= 0 ? i : isWorkload(o) ? order.length + 1 : order.length;
}

function isWorkload(o: KubeObject): boolean {
  return WORKLOADS.has(o.kind ?? '') || o.kind === 'CronJob';
}

function isDeployment(o: KubeObject): boolean {
  return o.kind === 'Deployment';
}

function nameOf(o: KubeObject): string {
  return o.metadata?.name ?? '';
}

function describeObject(o: KubeObject): string {
  return `${o.kind} ${o.metadata?.name}`;
}

function objectKey(o: KubeObject): string {
  const group = (o.apiVersion ?? '').includes('/') ? (o.apiVersion ?? '').split('/')[0] : '';
  return `${group}/${o.kind}/${o.metadata?.name}`;
}

function kindsOf(objects: KubeObject[]): Kind[] {
  return objects.map((o) => ({ apiVersion: o.apiVersion ?? '', kind: o.kind ?? '' }));
}

function uniqueKinds(kinds: Kind[]): Kind[] {
  const seen = new Map<string, Kind>();
  for (const k of kinds) seen.set(`${k.apiVersion}/${k.kind}`, k);
  return [...seen.values()];
}

/**
 * What `manager` set on a live object with server-side apply, as an object to apply again (like
 * client-go's Extract): the fields its managedFields entry lists, and nothing the server or others
 * added (a Service's clusterIP, defaults). Undefined when the manager applied nothing to it.
 */
export function ownedFields(o: KubeObject, manager: string): KubeObject | undefined {
  const entry = o.metadata.managedFields?.find((m) => m.manager === manager && m.operation === 'Apply' && m.fieldsV1);
  if (!entry) return undefined;
  let source: Record<string, unknown> = o;
  // stringData is written, never read back: a Secret's values are in data (base64).
  if (o.kind === 'Secret' && isObject(o.data)) {
    source = { ...o, stringData: Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString('utf8')])) };
  }
  const owned = extractFields(source, entry.fieldsV1!) as Record<string, any>;
  return { ...owned, apiVersion: o.apiVersion, kind: o.kind, metadata: { ...owned.metadata, name: o.metadata.name, namespace: o.metadata.namespace } };
}

/** The part of `value` that a FieldsV1 set names: f:<field>, k:<list item's keys>, v:<set value>, i:<index>; "." is the item itself. */
function extractFields(value: unknown, fields: Record<string, unknown>): unknown {
  const whole = (sub: unknown) => !isObject(sub) || Object.keys(sub).every((k) => k === '.');
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const [key, sub] of Object.entries(fields)) {
      const i = itemIndex(value, key);
      if (i < 0) continue;
      let item = value[i];
      if (!whole(sub)) {
        const part = extractFields(item, sub as Record<string, unknown>);
        item = key.startsWith('k:') ? { ...(JSON.parse(key.slice(2)) as object), ...(part as object) } : part;
      }
      out.push(item);
    }
    return out;
  }
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, sub] of Object.entries(fields)) {
    if (!key.startsWith('f:') || !(key.slice(2) in value)) continue;
    const name = key.slice(2);
    out[name] = whole(sub) ? value[name] : extractFields(value[name], sub as Record<string, unknown>);
  }
  return out;
}

/** Where in `list` the item is that a FieldsV1 key names (k:<its keys>, v:<its value>, i:<its index>); -1 when it is not there. */
function itemIndex(list: unknown[], key: string): number {
  if (key.startsWith('k:')) {
    const keys = JSON.parse(key.slice(2)) as Record<string, unknown>;
    return list.findIndex((v) => isObject(v) && Object.entries(keys).every(([k, want]) => isDeepStrictEqual(v[k], want)));
  }
  if (key.startsWith('v:')) {
    const v = JSON.parse(key.slice(2)) as unknown;
    return list.findIndex((x) => isDeepStrictEqual(x, v));
  }
  if (key.startsWith('i:')) {
    const i = Number(key.slice(2));
    return Number.isInteger(i) && i >= 0 && i < list.length ? i : -1;
  }
  return -1;
}

/**
 * The fields of each kind that Conveyor's manifests hold whole: what another field manager set
 * inside them (a variable, a port or a volume mount added to the release's container by hand, a
 * container, a key added to its ConfigMap) is removed after each apply, so that they end up as
 * rendered, as `kubectl replace` would leave them. Labels and annotations (`metadata`, at any
 * depth) stay shared: controllers and tools write their own there (a Deployment's revision, the
 * time of a restart), and the keys Conveyor sets are taken back by the apply itself (force).
 * Other kinds, and other fields, keep server-side apply's rule (what others set stays theirs): a
 * PersistentVolumeClaim's volumeName is the cluster's, a ServiceAccount's token secrets its
 * controller's, and operators fill in the spec of their custom resources.
 */
const WHOLE_FIELDS: Record<string, string[]> = {
  Deployment: ['spec'],
  StatefulSet: ['spec'],
  DaemonSet: ['spec'],
  ReplicaSet: ['spec'],
  Job: ['spec'],
  CronJob: ['spec'],
  Service: ['spec'],
  // A Secret's stringData is written into its data (see withoutOthersFields).
  ConfigMap: ['data', 'binaryData'],
  Secret: ['data'],
};

type FieldSet = Record<string, unknown>;

/**
 * The live object as `manager` applied it, without what other field managers set inside the
 * fields it holds whole (WHOLE_FIELDS): the object to replace it with. Fields nobody owns (the
 * server's defaults, a Service's clusterIP) stay. Undefined when there is nothing to remove.
 */
export function withoutOthersFields(o: KubeObject, manager: string): KubeObject | undefined {
  const whole = WHOLE_FIELDS[o.kind];
  const entries = o.metadata.managedFields ?? [];
  const mine = entries.find((m) => m.manager === manager && m.operation === 'Apply' && m.fieldsV1)?.fieldsV1;
  if (!whole || !mine) return undefined;
  const others = entries.filter((m) => !(m.manager === manager && m.operation === 'Apply') && m.fieldsV1).reduce<FieldSet>((all, m) => unionFields(all, m.fieldsV1!), {});
  // stringData is written into data: the keys applied there are the manager's own.
  const own: FieldSet = o.kind === 'Secret' && isObject(mine['f:stringData']) ? { ...mine, 'f:data': unionFields(isObject(mine['f:data']) ? mine['f:data'] : {}, mine['f:stringData']) } : mine;
  const out: Record<string, unknown> = structuredClone(o);
  for (const field of whole) {
    const key = `f:${field}`;
    if (!isObject(others[key]) || !(field in out)) continue;
    if (key in own) out[field] = removeFields(out[field], others[key], own[key]);
    else delete out[field];
  }
  return isDeepStrictEqual(out, o) ? undefined : (out as KubeObject);
}

/** `value` without what the FieldsV1 set `others` names and `own` does not (inside what both name, field by field); `metadata` stays. */
function removeFields(value: unknown, others: FieldSet, own: unknown): unknown {
  const mine: FieldSet = isObject(own) ? own : {};
  const sub = (key: string) => (isObject(others[key]) ? others[key] : {});
  if (Array.isArray(value)) {
    const drop = new Set<number>();
    const out = [...value];
    for (const key of Object.keys(others)) {
      const i = itemIndex(value, key);
      if (i < 0) continue;
      if (key in mine) out[i] = removeFields(value[i], sub(key), mine[key]);
      else drop.add(i);
    }
    return out.filter((_, i) => !drop.has(i));
  }
  if (!isObject(value)) return value;
  const out = { ...value };
  for (const key of Object.keys(others)) {
    const name = key.slice(2);
    if (!key.startsWith('f:') || name === 'metadata' || !(name in out)) continue;
    if (key in mine) out[name] = removeFields(out[name], sub(key), mine[key]);
    else delete out[name];
  }
  return out;
}

function unionFields(a: FieldSet, b: FieldSet): FieldSet {
  const out = { ...a };
  for (const [key, sub] of Object.entries(b)) out[key] = isObject(out[key]) && isObject(sub) ? unionFields(out[key], sub) : sub;
  return out;
}

function timeoutOf(d: V1Deployment): number {
  try {
    const check = JSON.parse(d.metadata?.annotations?.[ANNOTATION.health] ?? '') as HealthCheck;
    return typeof check.timeoutMs === 'number' ? check.timeoutMs : DEFAULT_TIMEOUT_MS;
  } catch {
    return DEFAULT_TIMEOUT_MS;
  }
}

function toInstance(p: V1Pod, environment: string, configMaps: Map<string, Record<string, string>>): LiveInstance {
  const labels = { ...p.metadata?.labels };
  const containers = p.spec?.containers ?? [];
  const name = p.metadata?.annotations?.[ANNOTATION.container];
  const container = containers.find((c) => c.name === name) ?? containers[0];
  const env: Record<string, string> = {};
  for (const from of container?.envFrom ?? []) {
    const data = from.configMapRef?.name ? configMaps.get(from.configMapRef.name) : undefined;
    for (const [k, v] of Object.entries(data ?? {})) env[`${from.prefix ?? ''}${k}`] = v;
  }
  for (const e of container?.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  const image = container?.image ?? '';
  const status = p.status?.containerStatuses?.find((s) => s.name === container?.name);
  const digest = /@(sha256:[0-9a-f]{64})$/.exec(image)?.[1] ?? /@(sha256:[0-9a-f]{64})$/.exec(status?.imageID ?? '')?.[1] ?? image;
  return {
    id: p.metadata?.name ?? '',
    environment,
    release: Number(labels[LABEL.release]),
    artifactDigest: digest,
    // Pod addresses are inside the cluster's network: see KubernetesRuntime.
    address: null,
    state: podState(p),
    env,
    labels,
  };
}

function podState(p: V1Pod): LiveInstance['state'] {
  const phase = p.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed' || podProblem(p) !== null) return 'exited';
  if (phase === 'Running') return isReady(p) ? 'running' : 'starting';
  if (phase === 'Pending' || !phase) return 'starting';
  return 'unknown';
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(reason: string, log: string, restored: boolean): ApplyResult {
  return { ok: false, reason, log, restored };
}
