import express, { type NextFunction, type Request, type Response } from 'express';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Deployer } from '../deploy/deployer';
import { actor } from '../deploy/deployer';
import type { Engine } from '../engine/engine';
import { artifactRef, pickArtifact } from '../steps/deploy';
import type { ApiError, ConfigState, Diagnostic, Health, ServerMessage, StartRunRequest, WatchState } from '../protocol';
import { PROTOCOL_VERSION } from '../protocol';
import { stageLogFolder, stepLogName } from '../steps/executor';
import type { Store } from '../store/store';
import type { IDisposable, Result } from '../util/lifecycle';
import { MAX_SNOOZE_MS, MAX_SNOOZE_TEXT, type Alerts } from '../alerts/alerts';
import { productionEnvironment, type Metrics } from '../metrics/metrics';
import { durationToMs } from '../config/duration';
import type { Reconciler } from '../gitops/reconciler';
import { checkRequest } from './auth';
import { dashboardCors, dashboardRouter } from './dashboard';
import { Subscriber } from './subscriber';

/** What the server needs from the agent. */
export interface AgentApi {
  readonly store: Store;
  readonly engine: Engine;
  readonly deployer: Deployer;
  /** The GitOps reconciler; undefined when the workspace is not in a git repository. */
  readonly reconciler: Reconciler | undefined;
  readonly alerts: Alerts;
  readonly metrics: Metrics;
  readonly conveyorDir: string;
  health(): Health;
  config(): ConfigState;
  watchState(): WatchState;
  setWatch(enabled: boolean): WatchState;
  validate(text: string): Diagnostic[];
}

export interface ServerHandle extends IDisposable {
  readonly port: number;
  close(): Promise<void>;
}

const MAX_LIST = 500;

/** A 4xx answer with a message and, where there is one, what to do about it. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(body.error);
  }
}

/**
 * The agent's HTTP and WebSocket API on 127.0.0.1. Every route and the socket need the token;
 * foreign Origins and non-loopback Hosts are refused first.
 */
export async function startServer(api: AgentApi, token: string, port = 0): Promise<ServerHandle> {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const server = http.createServer(app);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  let boundPort = port;

  app.use(dashboardCors(() => boundPort));
  app.use('/dashboard', dashboardRouter({ token, port: () => boundPort }));
  app.use((req, res, next) => {
    const verdict = checkRequest(req, token, boundPort, { allowQueryToken: false });
    if (verdict.status !== 200) {
      res.status(verdict.status).json({ error: verdict.error ?? "refused", fix: verdict.fix } satisfies ApiError);
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(express.json({ limit: '1mb', strict: true }));

  const r = express.Router();
  r.get('/health', (_req, res) => {
    res.json(api.health());
  });
  r.get('/config', (_req, res) => {
    res.json(api.config());
  });
  r.post('/validate', (req, res) => {
    const body = req.body as { text?: unknown };
    if (!isObject(body) || typeof body.text !== 'string') throw bad('body must be {"text": "<conveyor.yml text>"}');
    res.json({ diagnostics: api.validate(body.text) });
  });
  r.get('/runs', (req, res) => {
    res.json(api.store.listRuns(intParam(req.query.limit, 'limit', 50, 1, MAX_LIST)));
  });
  r.post('/runs', async (req, res) => {
    const body = parseStartRequest(req.body);
    const result = await api.engine.start({ ...body, trigger: body.trigger ?? 'api' });
    if (!result.ok) throw new HttpError(400, result.error);
    res.status(201).json(result.value);
  });
  r.get('/runs/:id', (req, res) => {
    res.json(findRun(api, req.params.id));
  });
  r.post('/runs/:id/cancel', (req, res) => {
    const run = findRun(api, req.params.id);
    const result = api.engine.cancel(run.id);
    if (!result.ok) throw new HttpError(404, result.error);
    res.json(result.value);
  });
  r.post('/runs/:id/rerun', async (req, res) => {
    const run = findRun(api, req.params.id);
    const trigger = isObject(req.body) && req.body.trigger === 'manual' ? 'manual' : 'api';
    const result = await api.engine.rerun(run.id, trigger);
    if (!result.ok) throw new HttpError(400, result.error);
    res.status(201).json(result.value);
  });
  r.get('/runs/:id/logs', (req, res) => {
    const run = findRun(api, req.params.id);
    const stage = strParam(req.query.stage, 'stage');
    if (stage !== undefined && !run.stages.some((s) => s.name === stage)) {
      throw new HttpError(404, { error: `run #${run.id} has no stage "${stage}"`, fix: `stages: ${run.stages.map((s) => s.name).join(', ')}` });
    }
    const attemptParam = req.query.attempt === undefined ? undefined : intParam(req.query.attempt, 'attempt', 1, 1, 1000);
    const stepParam = req.query.step === undefined ? undefined : intParam(req.query.step, 'step', 0, 0, 10000);
    const steps = run.steps.filter((s) => {
      if (stage !== undefined && s.stage !== stage) return false;
      if (attemptParam !== undefined && s.attempt !== attemptParam) return false;
      if (stepParam !== undefined && s.index !== stepParam) return false;
      return s.status !== 'skipped' || stepParam !== undefined;
    });
    res.type('text/plain; charset=utf-8');
    const single = stepParam !== undefined && steps.length === 1;
    void streamLogs(res, api.conveyorDir, run.id, steps, !single);
  });
  r.get('/runs/:id/tests', (req, res) => {
    const run = findRun(api, req.params.id);
    res.json(api.store.getTests(run.id));
  });
  r.get('/events', (req, res) => {
    const since = intParam(req.query.since, 'since', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(req.query.limit, 'limit', 1000, 1, 10000);
    res.json(api.store.events(since, limit));
  });
  r.get('/watch', (_req, res) => {
    res.json(api.watchState());
  });
  r.post('/watch', (req, res) => {
    const body = objectBody(req.body, ['enabled']);
    if (typeof body.enabled !== 'boolean') throw bad('"enabled" must be true or false');
    res.json(api.setWatch(body.enabled));
  });
  r.get('/environments', async (_req, res) => {
    res.json(await api.deployer.status());
  });
  r.post('/environments/:name/deploy', (req, res) => {
    const body = objectBody(req.body, ['run', 'stage', 'via']);
    const name = String(req.params.name);
    const runs = body.run !== undefined ? [findRun(api, String(body.run))] : api.store.listRuns(100).filter((r) => r.status === 'succeeded').map((r) => api.store.getRun(r.id)!);
    const run = runs.find((r) => r.artifacts.length > 0);
    if (!run) throw bad(body.run !== undefined ? `run #${body.run} recorded no artifact` : 'no succeeded run recorded an artifact yet', 'run the pipeline first; a stage with "artifacts:" records one');
    const picked = pickArtifact(typeof body.stage === 'string' ? body.stage : undefined, run.artifacts);
    if (!picked.ok) throw bad(picked.reason);
    const a = picked.artifact;
    const result = api.deployer.deploy(
      { environment: name, artifact: artifactRef(a), runId: run.id, stage: null, commit: run.commit, requestedBy: actor(via(body)) },
      'manual',
    );
    if (!result.ok) throw new HttpError(400, result.error);
    res.status(202).json(result.value.deployment);
  });
  r.post('/environments/:name/promote', (req, res) => {
    const body = objectBody(req.body, ['from', 'via']);
    if (typeof body.from !== 'string') throw bad('"from" must name the environment to promote from', 'e.g. {"from": "staging"}');
    const result = api.deployer.promote(body.from, String(req.params.name), actor(via(body)));
    if (!result.ok) throw new HttpError(400, result.error);
    res.status(202).json(result.value.deployment);
  });
  r.post('/environments/:name/rollback', (req, res) => {
    const body = objectBody(req.body, ['to', 'via']);
    if (body.to !== undefined && (!Number.isInteger(body.to) || (body.to as number) < 1)) throw bad('"to" must be a release number');
    const result = api.deployer.rollback(String(req.params.name), body.to as number | undefined, actor(via(body)));
    if (!result.ok) throw new HttpError(400, result.error);
    res.status(202).json(result.value.deployment);
  });
  const reconciler = (): Reconciler => {
    if (!api.reconciler) throw bad('environments have no desired state in git: the workspace is not in a git repository', 'run "git init" and commit, then restart the agent');
    return api.reconciler;
  };
  r.get('/environments/:name/state', async (req, res) => {
    const result = await reconciler().view(String(req.params.name));
    if (!result.ok) throw new HttpError(404, result.error);
    res.json(result.value);
  });
  r.post('/environments/:name/sync', async (req, res) => {
    const body = objectBody(req.body, ['dryRun', 'via']);
    if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') throw bad('"dryRun" must be true or false');
    const result = await reconciler().sync(String(req.params.name), body.dryRun === true, actor(via(body)));
    if (!result.ok) throw new HttpError(400, result.error);
    res.json(result.value);
  });
  r.post('/environments/:name/reconcile', async (req, res) => {
    const body = objectBody(req.body, ['paused', 'via']);
    if (typeof body.paused !== 'boolean') throw bad('"paused" must be true or false', 'e.g. {"paused": true}');
    const result = await reconciler().setPaused(String(req.params.name), body.paused);
    if (!result.ok) throw new HttpError(404, result.error);
    res.json(result.value);
  });
  // Monitoring: the dashboards' queries. Query strings are text; numbers are checked by Metrics.
  const num = (v: unknown): number | undefined => (v === undefined ? undefined : typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : NaN);
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const answer = <T>(res: express.Response, r: Result<T, ApiError>) => {
    if (!r.ok) throw new HttpError(400, r.error);
    res.json(r.value);
  };
  r.get('/metrics/dora', (req, res) => {
    const config = api.config();
    const envs = config.valid ? config.config.environments : [];
    const environment = str(req.query.environment) ?? productionEnvironment(envs) ?? undefined;
    if (!environment) throw bad('no environment to measure', 'declare environments in conveyor.yml, or pass environment=NAME');
    answer(res, api.metrics.dora({ environment, days: num(req.query.days), from: str(req.query.from), to: str(req.query.to) }));
  });
  r.get('/metrics/builds', (req, res) => answer(res, api.metrics.builds({ days: num(req.query.days), to: str(req.query.to) })));
  r.get('/metrics/durations', (req, res) => answer(res, api.metrics.durations({ weeks: num(req.query.weeks), to: str(req.query.to), thresholdPct: num(req.query.thresholdPct) })));
  r.get('/metrics/load', (req, res) => answer(res, api.metrics.load({ limit: num(req.query.limit), stage: str(req.query.stage) })));
  r.get('/timeline', (req, res) => {
    const kinds = str(req.query.kinds);
    answer(
      res,
      api.metrics.timeline({
        before: num(req.query.before),
        limit: num(req.query.limit),
        environment: str(req.query.environment),
        stage: str(req.query.stage),
        kinds: kinds ? kinds.split(',').filter(Boolean) : undefined,
        text: str(req.query.text),
        includeLogs: req.query.logs === '1' || req.query.logs === 'true',
      }),
    );
  });
  r.get('/incidents/changes', async (req, res) => {
    const d = num(req.query.deployment);
    const seq = num(req.query.seq);
    if (d === undefined && seq === undefined) throw bad('name the incident', 'deployment=<id> or seq=<event number>');
    answer(res, await api.metrics.changesBefore(d !== undefined ? { deployment: d } : { seq: seq! }, num(req.query.maxCommits)));
  });
  r.get('/commits/:sha/diff', async (req, res) => {
    const sha = String(req.params.sha);
    if (!/^[0-9a-f]{4,40}$/i.test(sha)) throw bad(`"${sha}" is not a commit id`, 'give a hexadecimal commit id');
    answer(res, await api.metrics.commitDiff(sha));
  });
  r.get('/alerts', (req, res) => {
    res.json(api.alerts.list(req.query.all === '1' || req.query.all === 'true'));
  });
  const alertId = (raw: string): number => {
    const id = Number(raw.replace(/^#/, ''));
    if (!Number.isSafeInteger(id) || id < 1) throw bad(`"${raw}" is not an alert number`, 'conveyor alerts lists them');
    return id;
  };
  r.post('/alerts/:id/snooze', (req, res) => {
    const body = objectBody(req.body, ['for', 'via']);
    const forMs = body.for === undefined ? 3_600_000 : typeof body.for === 'string' || typeof body.for === 'number' ? durationToMs(body.for) : undefined;
    if (forMs === undefined || forMs <= 0) throw bad('"for" must be a duration such as 30m, 1h or 24h', 'e.g. {"for": "1h"}');
    if (forMs > MAX_SNOOZE_MS) throw bad(`"for" must be at most ${MAX_SNOOZE_TEXT}, not ${JSON.stringify(body.for).slice(0, 40)}`, 'e.g. {"for": "24h"}; resolve an alert that no longer matters');
    const result = api.alerts.snooze(alertId(String(req.params.id)), forMs, actor(via(body)));
    if (!result.ok) throw new HttpError(404, result.error);
    res.json(result.value);
  });
  r.post('/alerts/:id/resolve', (req, res) => {
    const body = objectBody(req.body, ['via']);
    const result = api.alerts.resolve(alertId(String(req.params.id)), actor(via(body)));
    if (!result.ok) throw new HttpError(404, result.error);
    res.json(result.value);
  });
  r.get('/deployments/:id', (req, res) => {
    const id = Number(String(req.params.id).replace(/^#/, ''));
    const d = Number.isSafeInteger(id) ? api.store.getDeployment(id) : undefined;
    if (!d) throw new HttpError(404, { error: `no deployment #${req.params.id}` });
    res.json(d);
  });
  r.get('/previews', (_req, res) => {
    res.json(api.store.previews());
  });
  r.post('/previews', (req, res) => {
    const body = objectBody(req.body, ['branch', 'template', 'via']);
    if (typeof body.branch !== 'string' || !body.branch || body.branch.length > 200) throw bad('"branch" must name a branch', 'e.g. {"branch": "feature/login"}');
    if (body.template !== undefined && typeof body.template !== 'string') throw bad('"template" must name a preview template');
    const result = api.deployer.createPreview(body.branch, body.template as string | undefined, actor(via(body)));
    if (!result.ok) throw new HttpError(400, result.error);
    res.status(201).json({ preview: result.value.preview, deployment: result.value.deployment });
  });
  r.delete('/previews/:name', async (req, res) => {
    const result = await api.deployer.destroyPreview(String(req.params.name), `destroyed by ${actor('api')}`);
    if (!result.ok) throw new HttpError(404, result.error);
    res.json({ destroyed: result.value });
  });
  r.get('/approvals', (_req, res) => {
    res.json(api.store.pendingApprovals());
  });
  for (const verdict of ['approve', 'reject'] as const) {
    r.post(`/approvals/:id/${verdict}`, (req, res) => {
      const body = objectBody(req.body, ['reason', 'via']);
      if (body.reason !== undefined && (typeof body.reason !== 'string' || body.reason.length > 2000)) throw bad('"reason" must be a short text');
      const id = Number(String(req.params.id).replace(/^#/, ''));
      if (!Number.isSafeInteger(id)) throw bad(`"${String(req.params.id).slice(0, 40)}" is not an approval number`);
      const result = api.deployer[verdict](id, actor(via(body)), (body.reason as string | undefined) ?? null);
      if (!result.ok) throw new HttpError(result.error.error.startsWith('no approval') ? 404 : 409, result.error);
      res.json(result.value);
    });
  }
  app.use('/api', r);

  app.use((req, res) => {
    res.status(404).json({ error: `no route ${req.method} ${req.path}`, fix: 'see the API table in agent/protocol.ts' } satisfies ApiError);
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof HttpError) {
      res.status(error.status).json(error.body);
      return;
    }
    const e = error as { type?: string; status?: number; message?: string };
    if (e?.type === 'entity.parse.failed') {
      res.status(400).json({ error: `the body is not valid JSON: ${e.message}`, fix: 'send Content-Type: application/json with a JSON object' } satisfies ApiError);
      return;
    }
    if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ error: e.message ?? 'bad request' } satisfies ApiError);
      return;
    }
    process.emitWarning(`request failed: ${e?.message ?? String(error)}`);
    res.status(500).json({ error: `internal error: ${e?.message ?? String(error)}` } satisfies ApiError);
  });

  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://x');
    const verdict = checkRequest(req, token, boundPort, { allowQueryToken: true });
    const refuse = (status: number, error: string) => socket.end(rawAnswer(status, { error }));
    if (verdict.status !== 200) return refuse(verdict.status, verdict.error!);
    if (url.pathname !== '/api/events') return refuse(404, `no WebSocket at ${url.pathname}; use /api/events`);
    const sinceText = url.searchParams.get('since');
    const since = sinceText === null ? api.store.lastSeq : Number(sinceText);
    if (!Number.isSafeInteger(since) || since < 0) return refuse(400, `since must be a whole number >= 0, not "${sinceText}"`);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const hello: ServerMessage = { type: 'hello', version: api.health().version, protocol: PROTOCOL_VERSION, lastSeq: api.store.lastSeq };
      ws.send(JSON.stringify(hello));
      ws.on('message', (data) => {
        // Clients only ping; anything else is answered with an error, never a crash.
        try {
          const msg = JSON.parse(String(data)) as { type?: unknown };
          if (msg?.type !== 'ping') throw new Error();
        } catch {
          ws.send(JSON.stringify({ type: 'error', error: 'unknown message; the only client message is {"type":"ping"}' } satisfies ServerMessage));
        }
      });
      new Subscriber(ws, api.store, since);
    });
  });

  // A request Node's HTTP parser refuses (an unknown method, a head over its size limit, one not
  // received in time) never reaches the routes: it is answered here, with JSON like every other
  // refusal. The socket is then half-closed and read to its end, so that the client reads the
  // answer instead of a reset under what it is still sending; it is destroyed at the latest after
  // REFUSED_LINGER_MS. Node reports each further chunk of a refused socket again: those are dropped.
  // The answer under way on each socket, which an answer written straight to it must not cut into.
  const responding = new WeakMap<Duplex, http.ServerResponse>();
  server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    responding.set(req.socket, res);
    res.once('close', () => {
      if (responding.get(req.socket) === res) responding.delete(req.socket);
    });
  });
  const refused = new Set<Duplex>();
  server.on('clientError', (error: ParserError, socket: Duplex) => {
    try {
      if (refused.has(socket)) return;
      // No socket to answer on, or an answer already on the wire that ours would corrupt.
      if (!socket.writable || responding.get(socket)?.headersSent) {
        socket.destroy();
        return;
      }
      refused.add(socket);
      socket.once('close', () => refused.delete(socket));
      setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
      const [status, body] = parserRefusal(error);
      // A HEAD is answered without the body: a client reads none, and would take it for the next answer.
      socket.end(rawAnswer(status, body, error.rawPacket?.toString('latin1', 0, 5) === 'HEAD '));
    } catch {
      socket.destroy();
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  boundPort = (server.address() as AddressInfo).port;

  const close = async () => {
    for (const c of wss.clients) c.terminate();
    for (const s of refused) s.destroy();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { port: boundPort, close, dispose: () => void close() };
}

/** How long a refused request's socket stays open for the client to read the answer. */
const REFUSED_LINGER_MS = 2000;

/** An error of Node's HTTP parser, as 'clientError' gives it (the HPE_ codes are llhttp's). */
type ParserError = Error & { code?: string; reason?: string; bytesParsed?: number; rawPacket?: Buffer };

/** The answer to a request Node's HTTP parser refused: the status Node would give, and why. */
function parserRefusal(error: ParserError): [number, ApiError] {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, { error: `the request's address and headers are longer than ${Math.floor(http.maxHeaderSize / 1024)} KiB`, fix: 'shorten the address; no query value of the API needs to be this long' }];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, { error: 'the chunk extensions of the request body are too long', fix: 'send the body with Content-Length' }];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, { error: 'the request was not received in time', fix: 'send the whole request at once' }];
    case 'HPE_INVALID_METHOD': {
      // The method is the word the error is in: at the start of the line it is on.
      const raw = error.rawPacket?.toString('latin1') ?? '';
      const line = raw.slice(raw.lastIndexOf('\n', Math.min(error.bytesParsed ?? 0, raw.length) - 1) + 1);
      const method = /^[\w!#$%&'*+.^`|~-]{1,20}(?= )/.exec(line)?.[0];
      return [400, { error: method ? `"${method}" is not an HTTP method the agent knows` : 'the request does not start with an HTTP method', fix: 'the API takes GET, POST and DELETE' }];
    }
    default:
      return [400, { error: `the request is not valid HTTP: ${error.reason ?? error.message}`.slice(0, 200) }];
  }
}

/** A whole answer written straight to a socket, where there is no response object: JSON, then close. */
function rawAnswer(status: number, body: ApiError, headOnly = false): string {
  const text = JSON.stringify(body);
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${headOnly ? '' : text}`;
}

function bad(error: string, fix?: string): HttpError {
  return new HttpError(400, { error, fix });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function findRun(api: AgentApi, idText: string | string[] | undefined) {
  const text = String(idText ?? '').replace(/^#/, '');
  if (!/^\d{1,15}$/.test(text)) throw bad(`"${String(idText).slice(0, 40)}" is not a run number`, 'runs are numbered: 1, 2, 3...');
  const run = api.store.getRun(Number(text));
  if (!run) throw new HttpError(404, { error: `no run #${text}`, fix: 'GET /api/runs lists the runs' });
  return run;
}

function intParam(v: unknown, name: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !/^\d{1,16}$/.test(v)) throw bad(`${name} must be a whole number, not ${JSON.stringify(v).slice(0, 40)}`);
  const n = Number(v);
  if (n < min || n > max) throw bad(`${name} must be between ${min} and ${max}`);
  return n;
}

function strParam(v: unknown, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length > 200) throw bad(`${name} must be one short string`);
  return v;
}

/** A JSON object body with only the named keys (an empty body is an empty object). */
function objectBody(body: unknown, keys: string[]): Record<string, unknown> {
  if (body === undefined) return {};
  if (!isObject(body)) throw bad('the body must be a JSON object');
  for (const key of Object.keys(body)) {
    if (!keys.includes(key)) throw bad(`unknown field "${key.slice(0, 40)}"`, `fields: ${keys.join(', ')}`);
  }
  return body;
}

/** Who is calling, as the client says: cli, editor, api. */
function via(body: Record<string, unknown>): string {
  return typeof body.via === 'string' && /^[a-z-]{1,20}$/.test(body.via) ? body.via : 'api';
}

const START_KEYS = new Set(['stages', 'commit', 'workingTree', 'trigger', 'tests']);

function parseStartRequest(body: unknown): StartRunRequest {
  if (body === undefined) return {};
  if (!isObject(body)) throw bad('the body must be a JSON object like {"stages": ["test"]}');
  for (const key of Object.keys(body)) {
    if (!START_KEYS.has(key)) throw bad(`unknown field "${key.slice(0, 40)}"`, `fields: ${[...START_KEYS].join(', ')}`);
  }
  const out: StartRunRequest = {};
  if (body.stages !== undefined) {
    if (!Array.isArray(body.stages) || body.stages.length > 200 || !body.stages.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 200)) {
      throw bad('"stages" must be a list of stage names');
    }
    out.stages = body.stages as string[];
  }
  if (body.commit !== undefined) {
    if (typeof body.commit !== 'string' || body.commit.length === 0 || body.commit.length > 200) throw bad('"commit" must be a revision such as a SHA or a branch');
    out.commit = body.commit;
  }
  if (body.workingTree !== undefined) {
    if (typeof body.workingTree !== 'boolean') throw bad('"workingTree" must be true or false');
    out.workingTree = body.workingTree;
  }
  if (body.trigger !== undefined) {
    if (body.trigger !== 'manual' && body.trigger !== 'api') throw bad('"trigger" must be "manual" or "api"');
    out.trigger = body.trigger;
  }
  if (body.tests !== undefined) out.tests = testFiles(body.tests);
  return out;
}

/** The most test files one run may be asked for, and the longest path of one. */
const MAX_TESTS = 5000;
const MAX_TEST_PATH = 1000;

/** A start request's "tests": workspace-relative paths of test files, within the bounds above. */
function testFiles(tests: unknown): string[] {
  const example = 'e.g. {"tests": ["test/math.test.js"]}';
  if (!Array.isArray(tests)) throw bad('"tests" must be a list of test files relative to the workspace', example);
  if (tests.length > MAX_TESTS) throw bad(`"tests" lists ${tests.length} files; a run takes at most ${MAX_TESTS}`, 'ask for fewer, or leave "tests" out to run the whole stages');
  for (const [i, t] of tests.entries()) {
    const item = `"tests"[${i}]`;
    if (typeof t !== 'string' || t.length === 0) throw bad(`${item} must be a test file path, not ${(JSON.stringify(t) ?? String(t)).slice(0, 40)}`, example);
    if (t.length > MAX_TEST_PATH) throw bad(`${item} is ${t.length} characters long; a test file path has at most ${MAX_TEST_PATH}`, example);
    if (/[\u0000-\u001f]/.test(t)) throw bad(`${item} holds a control character: ${JSON.stringify(t.slice(0, 40))}`, example);
    if (t.startsWith('/') || t.split('/').includes('..')) throw bad(`"tests" must be a list of test files relative to the workspace: ${item} is ${JSON.stringify(t.slice(0, 80))}`, example);
  }
  return tests as string[];
}

/** Streams step logs from their files, one after the other, with a header per step when asked. */
async function streamLogs(
  res: Response,
  conveyorDir: string,
  runId: number,
  steps: { stage: string; attempt: number; index: number; command: string }[],
  headers: boolean,
): Promise<void> {
  try {
    for (const s of steps) {
      if (headers) res.write(`── ${s.stage} · attempt ${s.attempt} · step ${s.index + 1}: ${s.command.split('\n')[0]}\n`);
      const file = path.join(conveyorDir, 'logs', String(runId), stageLogFolder(s.stage), stepLogName(s.attempt, s.index));
      await new Promise<void>((resolve) => {
        const stream = fs.createReadStream(file);
        stream.on('error', () => resolve());
        stream.on('end', () => resolve());
        stream.pipe(res, { end: false });
      });
    }
  } finally {
    res.end();
  }
}
