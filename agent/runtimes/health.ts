import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import type { HealthCheck } from '../protocol';

export type ProbeResult = { ok: true } | { ok: false; reason: string };

/**
 * One health probe of an instance at `address` (host:port). TCP (the default): the port accepts a
 * connection. HTTP: a GET of the path answers 2xx or 3xx. Command: `/bin/sh -c` exits 0; it gets
 * the address as $CONVEYOR_ADDRESS. Each probe is bounded by twice the interval (0.25 s to 5 s).
 */
export function probeOnce(address: string, check: HealthCheck, signal?: AbortSignal): Promise<ProbeResult> {
  const perProbeMs = Math.max(250, Math.min(check.intervalMs * 2, 5000));
  if (check.kind === 'tcp') {
    return new Promise((resolve) => {
      const [host, port] = splitAddress(address);
      const socket = net.connect({ host, port });
      const done = (r: ProbeResult) => {
        socket.destroy();
        resolve(r);
      };
      socket.setTimeout(perProbeMs, () => done({ ok: false, reason: `no connection to ${address} within ${perProbeMs} ms` }));
      socket.once('connect', () => done({ ok: true }));
      socket.once('error', (e) => done({ ok: false, reason: `connect ${address}: ${(e as NodeJS.ErrnoException).code ?? e.message}` }));
    });
  }
  if (check.kind === 'http') {
    return new Promise((resolve) => {
      const [host, port] = splitAddress(address);
      const req = http.get({ host, port, path: check.path, timeout: perProbeMs, signal, headers: { 'user-agent': 'conveyor-health' } }, (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve(code >= 200 && code < 400 ? { ok: true } : { ok: false, reason: `GET ${check.path} answered ${code}` });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${perProbeMs} ms`)));
      req.on('error', (e) => resolve({ ok: false, reason: `GET http://${address}${check.path}: ${(e as NodeJS.ErrnoException).code ?? e.message}` }));
    });
  }
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', check.command], {
      env: { ...process.env, CONVEYOR_ADDRESS: address },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (d) => (out = (out + d).slice(-2000)));
    child.stderr.on('data', (d) => (out = (out + d).slice(-2000)));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, perProbeMs);
    child.on('error', (e) => resolve({ ok: false, reason: e.message }));
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, reason: `"${check.command}" ${sig ? `was killed (${sig})` : `exited ${code}`}${out.trim() ? `: ${out.trim().split('\n').pop()}` : ''}` });
    });
  });
}

/**
 * Probes until the instance is healthy or the check's timeout passes. Resolves with the last
 * failure's reason when it never gets healthy, so the error can say what the check saw.
 */
export async function waitHealthy(address: string, check: HealthCheck, signal?: AbortSignal): Promise<ProbeResult> {
  const deadline = Date.now() + check.timeoutMs;
  let last: ProbeResult = { ok: false, reason: 'not probed yet' };
  while (!signal?.aborted) {
    last = await probeOnce(address, check, signal);
    if (last.ok) return last;
    if (Date.now() + check.intervalMs > deadline) break;
    await new Promise((r) => setTimeout(r, check.intervalMs));
  }
  if (signal?.aborted) return { ok: false, reason: 'cancelled' };
  return { ok: false, reason: `not healthy within ${Math.round(check.timeoutMs / 100) / 10}s: ${last.ok ? '' : last.reason}` };
}

export function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))];
}
