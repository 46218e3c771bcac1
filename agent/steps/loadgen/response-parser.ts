const enum State {
  Head,
  Body,
  UntilClose,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailer,
}

const HEAD_END = Buffer.from('\r\n\r\n');
const LF = 0x0a;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/;
/** A response head or a chunk line longer than this is not a response we can measure. */
const MAX_HEAD_BYTES = 64 * 1024;

/**
 * The least of an HTTP/1.1 response parser a load generator needs: the status, where the
 * response ends (Content-Length, chunked, or the end of the connection) and whether the server
 * keeps the connection. Header values other than those three are not looked at, and a body is
 * skipped over, not copied.
 */
export class ResponseParser {
  private state = State.Head;
  /** The start of a head, or of a chunk line, that the previous data ended in the middle of. */
  private partial: Buffer | null = null;
  private remaining = 0;
  private status = 0;
  private close = false;
  /** The request was HEAD: responses have no body. */
  noBody = false;

  /** `done` is called for each complete response; `close` says the server closes the connection after it. */
  constructor(private readonly done: (status: number, close: boolean) => void) {}

  /** Starts over, for a new connection. */
  reset(): void {
    this.state = State.Head;
    this.partial = null;
  }

  /** Reads data from the connection. Returns what is wrong with a malformed response, or null. */
  execute(data: Buffer): string | null {
    let i = 0;
    const n = data.length;
    while (i < n) {
      switch (this.state) {
        case State.Head: {
          const r = this.head(data, i);
          if (typeof r === 'string') return r;
          if (r < 0) return null;
          i = r;
          break;
        }
        case State.Body: {
          const take = Math.min(this.remaining, n - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.complete();
          break;
        }
        case State.UntilClose:
          return null;
        case State.ChunkSize:
        case State.Trailer: {
          const end = this.line(data, i);
          if (end === null) return null;
          if (typeof end === 'string') return end;
          i = end.next;
          if (this.state === State.Trailer) {
            if (end.text === '') this.complete();
            break;
          }
          const size = parseInt(end.text, 16);
          if (!/^[0-9a-fA-F]+/.test(end.text) || !Number.isSafeInteger(size)) return `a chunk size "${end.text.slice(0, 40)}" is not hexadecimal`;
          if (size === 0) {
            this.state = State.Trailer;
          } else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.remaining, n - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.remaining = 2;
            this.state = State.ChunkEnd;
          }
          break;
        }
        case State.ChunkEnd: {
          const take = Math.min(this.remaining, n - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
      }
    }
    return null;
  }

  /** The connection ended: completes a response delimited by the end of the connection. */
  finish(): boolean {
    if (this.state !== State.UntilClose) return false;
    this.state = State.Head;
    this.done(this.status, true);
    return true;
  }

  /** Parses a head starting at `from`; returns where its body starts, -1 if it is not all here yet, or an error. */
  private head(data: Buffer, from: number): number | string {
    let buf = data;
    let start = from;
    const carried = this.partial ? this.partial.length : 0;
    if (this.partial) {
      buf = Buffer.concat([this.partial, data.subarray(from)]);
      start = 0;
    }
    const end = buf.indexOf(HEAD_END, start);
    if (end < 0) {
      if (buf.length - start > MAX_HEAD_BYTES) return `the response head is longer than ${MAX_HEAD_BYTES / 1024} KiB`;
      this.partial = Buffer.from(buf.subarray(start));
      return -1;
    }
    this.partial = null;
    const text = buf.toString('latin1', start, end);
    const next = from + (end + 4 - start - carried);

    const firstEnd = text.indexOf('\r\n');
    const statusLine = firstEnd < 0 ? text : text.slice(0, firstEnd);
    const m = STATUS_LINE.exec(statusLine);
    if (!m) return `the response does not start with an HTTP/1.x status line: "${statusLine.slice(0, 60)}"`;
    const status = Number(m[2]);
    let close = m[1] === '0'; // HTTP/1.0 closes unless it says keep-alive
    let length = -1;
    let chunked = false;
    let at = firstEnd;
    while (at >= 0) {
      const lineEnd = text.indexOf('\r\n', at + 2);
      const line = text.slice(at + 2, lineEnd < 0 ? undefined : lineEnd);
      at = lineEnd;
      const colon = line.indexOf(':');
      if (colon === 14 || colon === 17 || colon === 10) {
        const name = line.slice(0, colon).toLowerCase();
        const value = line.slice(colon + 1).trim().toLowerCase();
        if (name === 'content-length') {
          length = Number(value);
          if (!Number.isSafeInteger(length) || length < 0) return `Content-Length "${value}" is not a number of bytes`;
        } else if (name === 'transfer-encoding') {
          chunked = value.endsWith('chunked');
        } else if (name === 'connection') {
          if (value.includes('close')) close = true;
          else if (value.includes('keep-alive')) close = false;
        }
      }
    }

    if (status < 200 && status !== 101) return next; // informational: the real response follows
    this.status = status;
    this.close = close || status === 101;
    if (this.noBody || status === 204 || status === 304 || status === 101) {
      this.complete();
    } else if (chunked) {
      this.state = State.ChunkSize;
    } else if (length >= 0) {
      this.remaining = length;
      if (length === 0) this.complete();
      else this.state = State.Body;
    } else {
      this.close = true;
      this.state = State.UntilClose;
    }
    return next;
  }

  /** One CRLF-terminated line starting at `from` (with what the previous data left of it). */
  private line(data: Buffer, from: number): { text: string; next: number } | string | null {
    const nl = data.indexOf(LF, from);
    if (nl < 0) {
      const carried = this.partial ? this.partial.length : 0;
      if (carried + data.length - from > MAX_HEAD_BYTES) return `a chunk line is longer than ${MAX_HEAD_BYTES / 1024} KiB`;
      this.partial = Buffer.concat([this.partial ?? Buffer.alloc(0), data.subarray(from)]);
      return null;
    }
    let text = data.toString('latin1', from, nl);
    if (this.partial) {
      text = this.partial.toString('latin1') + text;
      this.partial = null;
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return { text, next: nl + 1 };
  }

  private complete(): void {
    this.state = State.Head;
    this.done(this.status, this.close);
  }
}
