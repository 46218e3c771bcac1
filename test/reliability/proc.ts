import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's CPU times. */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** Resident memory of a process in bytes, or undefined when it is gone. */
function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** User plus system CPU time of a process (not its children), in seconds. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** A listening TCP socket: its local address as the kernel has it. */
export interface ListeningSocket {
  family: 4 | 6;
  address: string;
  port: number;
}

/**
 * The TCP sockets a process listens on, from its file descriptors and /proc/net/tcp and tcp6
 * (state 0A is LISTEN). Addresses are decoded: 127.0.0.1, 0.0.0.0, ::1, ::.
 */
export function listeningSockets(pid: number): ListeningSocket[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // Closed while we looked.
    }
  }
  const out: ListeningSocket[] = [];
  for (const [file, family] of [['/proc/net/tcp', 4], ['/proc/net/tcp6', 6]] as const) {
    if (!fs.existsSync(file)) continue;
    for (const row of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const c = row.trim().split(/\s+/);
      if (c.length < 10 || c[3] !== '0A' || !inodes.has(c[9])) continue;
      const [hexAddress, hexPort] = c[1].split(':');
      out.push({ family, address: decodeAddress(hexAddress), port: parseInt(hexPort, 16) });
    }
  }
  return out;
}

/** Whether an address is the loopback interface. */
export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

/** /proc/net's hex: IPv4 is one little-endian word; IPv6 is four of them. */
function decodeAddress(hex: string): string {
  const word = (h: string) => [h.slice(6, 8), h.slice(4, 6), h.slice(2, 4), h.slice(0, 2)].map((b) => parseInt(b, 16));
  if (hex.length === 8) return word(hex).join('.');
  const bytes = [0, 8, 16, 24].flatMap((i) => word(hex.slice(i, i + 8)));
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.slice(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

/** One sample of a process: seconds since sampling began, resident bytes, CPU seconds so far. */
export interface Sample {
  t: number;
  rss: number;
  cpu: number;
}

/** Samples a process's memory and CPU at an interval until stopped. */
export class ProcessSampler {
  readonly samples: Sample[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = Date.now();
  private readonly cpu0: number;

  constructor(
    readonly pid: number,
    intervalMs: number,
  ) {
    this.cpu0 = cpuSeconds(pid) ?? 0;
    this.timer = setInterval(() => this.take(), intervalMs);
    this.take();
  }

  private take(): void {
    const rss = rssBytes(this.pid);
    const cpu = cpuSeconds(this.pid);
    if (rss !== undefined && cpu !== undefined) this.samples.push({ t: (Date.now() - this.t0) / 1000, rss, cpu: cpu - this.cpu0 });
  }

  stop(): void {
    clearInterval(this.timer);
    this.take();
  }

  get peakRss(): number {
    return this.samples.reduce((peak, s) => Math.max(peak, s.rss), 0);
  }

  /** CPU time over wall time since sampling began, as a share of one core. */
  get cpuShare(): number {
    const last = this.samples[this.samples.length - 1];
    return last && last.t > 0 ? last.cpu / last.t : 0;
  }

  /** The median resident size of the samples taken from `from` to `to` seconds. */
  medianRss(from: number, to: number): number {
    return median(this.samples.filter((s) => s.t >= from && s.t < to).map((s) => s.rss));
  }
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile (p from 0 to 100). */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
