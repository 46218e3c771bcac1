import type { WebSocket } from 'ws';
import type { Store } from '../store/store';
import type { IDisposable } from '../util/lifecycle';

/** Stop writing to a socket while this much is waiting in its send buffer. */
const HIGH_WATER = 4 * 1024 * 1024;
/** Most events in one frame. */
const BATCH = 1000;

/**
 * One WebSocket client's view of the event log. It keeps a cursor (the last sequence number
 * sent) and pulls the events after it, from memory or from SQLite, whenever the socket can take
 * more. A slow client therefore costs a cursor, not a queue: nothing is buffered for it beyond
 * the socket's own high-water mark, and it still gets every event exactly once, in order.
 *
 *   new event ──> wake() ──> pump: while socket buffer < HIGH_WATER
 *                                     read events after cursor ──> send ──> cursor = last seq
 *                          buffer full ──> wait for the send callback ──> pump
 */
export class Subscriber implements IDisposable {
  private cursor: number;
  private scheduled = false;
  private closed = false;
  private readonly sub: IDisposable;

  constructor(
    private readonly socket: WebSocket,
    private readonly store: Store,
    since: number,
  ) {
    this.cursor = since;
    this.sub = store.onDidAppend(() => this.wake());
    socket.on('close', () => this.dispose());
    socket.on('error', () => this.dispose());
    this.wake();
  }

  private wake(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed) return;
    while (this.socket.readyState === this.socket.OPEN) {
      // Unsent data means sends are in flight: each one's callback pumps again.
      if (this.socket.bufferedAmount >= HIGH_WATER) return;
      const batch = this.store.eventsAfter(this.cursor, BATCH);
      if (batch.length === 0) return;
      this.cursor = batch[batch.length - 1].seq;
      const frame = `{"type":"events","events":[${batch.map((e) => e.json).join(',')}]}`;
      this.socket.send(frame, (error) => {
        if (error) this.dispose();
        else if (this.socket.bufferedAmount < HIGH_WATER) this.wake();
      });
    }
  }

  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.sub.dispose();
  }
}
