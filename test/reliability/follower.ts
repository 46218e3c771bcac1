import WebSocket from 'ws';
import type { SequencedEvent, ServerMessage } from '../../agent/protocol';

/**
 * A plain client of the agent's event stream (`/api/events?since=N`): it keeps every event it is
 * sent, in the order sent, and calls `onEvent` for each as it arrives. It does not reconnect.
 */
export class EventFollower {
  readonly events: SequencedEvent[] = [];
  private readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(port: number, token: string, since: number, private readonly onEvent: (e: SequencedEvent, received: number) => void = () => undefined) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/api/events?since=${since}`, { headers: { authorization: `Bearer ${token}` } });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', () => resolve()));
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as ServerMessage;
      if (msg.type !== 'events') return;
      for (const e of msg.events) {
        this.events.push(e);
        this.onEvent(e, this.events.length);
      }
    });
  }

  close(): void {
    this.ws.terminate();
  }
}
