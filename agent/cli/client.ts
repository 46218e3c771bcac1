import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import WebSocket from 'ws';
import type { AgentDiscovery, ApiError, Health, SequencedEvent, ServerMessage } from '../protocol';
import { DISCOVERY_FILE } from '../protocol';

/** An answer from the agent that was not 2xx, with the agent's message. */
export class AgentHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(body.error + (body.fix ? ` (${body.fix})` : ''));
  }
}

/** The agent could not be reached or started. */
export class AgentUnavailableError extends Error {}

export function readDiscovery(workspace: string): AgentDiscovery | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(workspace, DISCOVERY_FILE), 'utf8')) as AgentDiscovery;
  } catch {
    return undefined;
  }
}

/** A client of one workspace's agent, over HTTP and WebSocket. */
export class AgentClient {
  constructor(readonly discovery: AgentDiscovery) {}

  get base(): string {
    return `http://127.0.0.1:${this.discovery.port}`;
  }

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/api${route}`, {
        method,
        headers: {
          authorization: `Bearer ${this.discovery.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (e) {
      throw new AgentUnavailableError(`the agent on port ${this.discovery.port} did not answer: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let parsed: ApiError;
      try {
        parsed = JSON.parse(text) as ApiError;
      } catch {
        parsed = { error: text || res.statusText };
      }
      throw new AgentHttpError(res.status, parsed);
    }
    const type = res.headers.get('content-type') ?? '';
    return (type.includes('application/json') ? JSON.parse(text) : text) as T;
  }

  health(): Promise<Health> {
    return this.request<Health>('GET', '/health');
  }

  /**
   * Calls `onEvent` for every event after `since`, in order, until `onEvent` returns true (done)
   * or the socket closes for good. Reconnects after a drop and resumes where it left off.
   */
  follow(since: number, onEvent: (e: SequencedEvent) => boolean | void): Promise<void> {
    let last = since;
    let attempts = 0;
    return new Promise((resolve, reject) => {
      const connect = () => {
        const ws = new WebSocket(`ws://127.0.0.1:${this.discovery.port}/api/events?since=${last}`, {
          headers: { authorization: `Bearer ${this.discovery.token}` },
        });
        let finished = false;
        ws.on('message', (data) => {
          attempts = 0;
          const msg = JSON.parse(String(data)) as ServerMessage;
          if (msg.type !== 'events') return;
          for (const e of msg.events) {
            if (e.seq <= last) continue;
            last = e.seq;
            if (onEvent(e) === true) {
              finished = true;
              ws.close();
              resolve();
              return;
            }
          }
        });
        ws.on('error', () => undefined);
        ws.on('close', () => {
          if (finished) return;
          if (++attempts > 20) {
            reject(new AgentUnavailableError('lost the connection to the agent'));
            return;
          }
          setTimeout(connect, Math.min(2000, 100 * attempts));
        });
      };
      connect();
    });
  }
}

/** Finds the workspace: the nearest folder upward from `start` that has a conveyor.yml. */
export function findWorkspace(start: string): string | undefined {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, 'conveyor.yml')) || fs.existsSync(path.join(dir, 'conveyor.yaml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** A client for a live agent, if one answers for this workspace. */
export async function connect(workspace: string): Promise<AgentClient | undefined> {
  const d = readDiscovery(workspace);
  if (!d) return undefined;
  const client = new AgentClient(d);
  try {
    await client.health();
    return client;
  } catch {
    return undefined;
  }
}

/**
 * Connects to the workspace's agent, starting one in the background when none answers. Its
 * output goes to `.conveyor/agent.log`.
 */
export async function connectOrStart(workspace: string, onProgress: (msg: string) => void): Promise<AgentClient> {
  const live = await connect(workspace);
  if (live) return live;
  onProgress('starting the agent in the background…');
  const conveyorDir = path.join(workspace, '.conveyor');
  fs.mkdirSync(conveyorDir, { recursive: true });
  const log = fs.openSync(path.join(conveyorDir, 'agent.log'), 'a');
  const child = spawn(process.execPath, [process.env.CONVEYOR_CLI ?? process.argv[1], 'agent', '--workspace', workspace], {
    detached: true,
    stdio: ['ignore', log, log],
    cwd: workspace,
    env: process.env,
  });
  child.unref();
  fs.closeSync(log);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const c = await connect(workspace);
    if (c) return c;
    if (exited !== null) {
      // Another agent may have won the race to start; give it a moment to answer.
      const again = await connect(workspace);
      if (again) return again;
      throw new AgentUnavailableError(`the agent exited at start (code ${exited}); see ${path.join(conveyorDir, 'agent.log')}`);
    }
  }
  throw new AgentUnavailableError(`the agent did not answer within 30 s; see ${path.join(conveyorDir, 'agent.log')}`);
}
