import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AgentDiscovery } from '../../agent/protocol';
import { DISCOVERY_FILE } from '../../agent/protocol';
import { AgentHttp, endpointOf, type AgentEndpoint } from './agentApi';

export function discoveryPath(folder: string): string {
  return path.join(folder, DISCOVERY_FILE);
}

export async function readDiscovery(folder: string): Promise<AgentDiscovery | undefined> {
  try {
    const d = JSON.parse(await fs.promises.readFile(discoveryPath(folder), 'utf8')) as AgentDiscovery;
    return typeof d?.port === 'number' && typeof d?.token === 'string' && typeof d?.pid === 'number' ? d : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The folder's live agent, if its discovery file names a process that is alive and answers
 * GET /api/health with the token. A stale file (the agent was killed) gives undefined.
 */
export async function probeAgent(folder: string, timeoutMs = 3000): Promise<AgentEndpoint | undefined> {
  const d = await readDiscovery(folder);
  if (!d || !isAlive(d.pid)) return undefined;
  const endpoint = endpointOf(d);
  try {
    const health = await new AgentHttp(endpoint).health(timeoutMs);
    return health.ok && health.pid === d.pid ? endpoint : undefined;
  } catch {
    return undefined;
  }
}
