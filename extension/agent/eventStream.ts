import WebSocket from 'ws';
import type { SequencedEvent, ServerMessage } from '../../agent/protocol';
import type { AgentEndpoint } from './agentApi';

export interface EventStreamHandlers {
  /** The server's greeting. Return false to close the stream at once (history was reset). */
  onHello(hello: Extract<ServerMessage, { type: 'hello' }>): boolean;
  /** A batch, in sequence order; events at or below the last seen seq are already dropped. */
  onEvents(events: SequencedEvent[]): void;
}

/** How the stream ended: closed by us, by the agent, or never opened. */
export interface StreamEnd {
  opened: boolean;
  reason: string;
}

const PING_MS = 20_000;

/**
 * Follows the agent's event log over WebSocket (`/api/events?since=N`) until the socket closes
 * or `signal` aborts. The agent sends every event after `since` exactly once and in order;
 * `lastSeq()` is read when connecting and when filtering, so a caller that resumes with the
 * last seq it applied never sees an event twice.
 *
 *   connect(since) ──hello──> onHello ──events──> onEvents ... ──close──> resolve(StreamEnd)
 */
export function followEvents(endpoint: AgentEndpoint, lastSeq: () => number, handlers: EventStreamHandlers, signal: AbortSignal): Promise<StreamEnd> {
  return new Promise((resolve) => {
    let opened = false;
    let settled = false;
    const ws = new WebSocket(`ws://127.0.0.1:${endpoint.port}/api/events?since=${lastSeq()}`, {
      headers: { authorization: `Bearer ${endpoint.token}` },
      handshakeTimeout: 5000,
      perMessageDeflate: false,
    });
    let ping: NodeJS.Timeout | undefined;
    const finish = (reason: string) => {
      if (settled) return;
      settled = true;
      clearInterval(ping);
      signal.removeEventListener('abort', onAbort);
      try {
        ws.terminate();
      } catch {
        // already closed
      }
      resolve({ opened, reason });
    };
    const onAbort = () => finish('stopped');
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) return finish('stopped');

    ws.on('open', () => {
      opened = true;
      ping = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
      }, PING_MS);
    });
    ws.on('message', (data) => {
      if (settled) return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(String(data)) as ServerMessage;
      } catch {
        return;
      }
      if (msg.type === 'hello') {
        if (!handlers.onHello(msg)) finish('history reset');
      } else if (msg.type === 'events') {
        const after = lastSeq();
        const fresh = msg.events.filter((e) => e.seq > after);
        if (fresh.length) handlers.onEvents(fresh);
      }
    });
    ws.on('unexpected-response', (_req, res) => finish(`the agent refused the event stream (HTTP ${res.statusCode})`));
    ws.on('error', (e) => finish(e.message));
    ws.on('close', (code) => finish(`closed (${code})`));
  });
}
