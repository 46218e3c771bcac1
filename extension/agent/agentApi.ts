import type {
  AgentDiscovery,
  ApiError,
  ConfigState,
  Diagnostic,
  Health,
  RunDetail,
  RunSummary,
  StartRunRequest,
  StateView,
  SyncInfo,
  SyncResult,
} from '../../agent/protocol';
import { API_PREFIX } from '../../agent/protocol';

/** Where one workspace folder's agent listens, from its discovery file. */
export interface AgentEndpoint {
  port: number;
  token: string;
  pid: number;
  version: string;
  workspace: string;
}

export function endpointOf(d: AgentDiscovery): AgentEndpoint {
  return { port: d.port, token: d.token, pid: d.pid, version: d.version, workspace: d.workspace };
}

/** The agent answered, but not with 2xx: its message and, when it has one, what to do. */
export class AgentApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(body.error + (body.fix ? ` (${body.fix})` : ''));
    this.name = 'AgentApiError';
  }
}

/** The agent did not answer at all. */
export class AgentUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentUnreachableError';
  }
}

export interface LogQuery {
  stage?: string;
  attempt?: number;
  step?: number;
}

/** A typed client of the agent's REST routes (agent/protocol.ts lists them). */
export class AgentHttp {
  constructor(readonly endpoint: AgentEndpoint) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.endpoint.port}`;
  }

  async request<T>(method: 'GET' | 'POST' | 'DELETE', route: string, body?: unknown, timeoutMs = 15_000): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${API_PREFIX}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${this.endpoint.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new AgentUnreachableError(`the agent on port ${this.endpoint.port} did not answer: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let parsed: ApiError;
      try {
        parsed = JSON.parse(text) as ApiError;
      } catch {
        parsed = { error: text || `${res.status} ${res.statusText}` };
      }
      throw new AgentApiError(res.status, parsed);
    }
    const type = res.headers.get('content-type') ?? '';
    return (type.includes('application/json') ? JSON.parse(text) : text) as T;
  }

  health(timeoutMs?: number): Promise<Health> {
    return this.request<Health>('GET', '/health', undefined, timeoutMs);
  }

  config(): Promise<ConfigState> {
    return this.request<ConfigState>('GET', '/config');
  }

  async validate(text: string): Promise<Diagnostic[]> {
    return (await this.request<{ diagnostics: Diagnostic[] }>('POST', '/validate', { text })).diagnostics;
  }

  listRuns(limit: number): Promise<RunSummary[]> {
    return this.request<RunSummary[]>('GET', `/runs?limit=${limit}`);
  }

  getRun(id: number): Promise<RunDetail> {
    return this.request<RunDetail>('GET', `/runs/${id}`);
  }

  startRun(req: StartRunRequest): Promise<RunSummary> {
    return this.request<RunSummary>('POST', '/runs', req);
  }

  cancelRun(id: number): Promise<RunSummary> {
    return this.request<RunSummary>('POST', `/runs/${id}/cancel`);
  }

  rerun(id: number): Promise<RunSummary> {
    return this.request<RunSummary>('POST', `/runs/${id}/rerun`, { trigger: 'manual' });
  }

  logs(id: number, q: LogQuery): Promise<string> {
    const params = new URLSearchParams();
    if (q.stage !== undefined) params.set('stage', q.stage);
    if (q.attempt !== undefined) params.set('attempt', String(q.attempt));
    if (q.step !== undefined) params.set('step', String(q.step));
    const query = params.toString();
    return this.request<string>('GET', `/runs/${id}/logs${query ? `?${query}` : ''}`, undefined, 60_000);
  }

  /** The environment's desired state file in git and its live state, in the same YAML shape. */
  environmentState(environment: string): Promise<StateView> {
    return this.request<StateView>('GET', `/environments/${encodeURIComponent(environment)}/state`, undefined, 60_000);
  }

  /** Applies the environment's desired state now (with `dryRun`, only says what it would do). */
  syncEnvironment(environment: string, req: { dryRun?: boolean; via?: string }): Promise<SyncResult> {
    return this.request<SyncResult>('POST', `/environments/${encodeURIComponent(environment)}/sync`, req, 60_000);
  }

  /** Pauses or resumes the reconciler for one environment: paused, changes are reported and not applied. */
  setReconcilePaused(environment: string, paused: boolean): Promise<SyncInfo> {
    return this.request<SyncInfo>('POST', `/environments/${encodeURIComponent(environment)}/reconcile`, { paused }, 60_000);
  }
}
