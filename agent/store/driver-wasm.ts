import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Wasm from 'node-sqlite3-wasm';
import { pragmaText, type BindParameters, type EngineInfo, type RunResult, type SqliteDatabase, type SqliteStatement, type SqlValue } from './sqlite';
import { isAlive } from '../util/process';

/**
 * node-sqlite3-wasm behind the seam.
 *
 * What this engine does differently, and how the driver hides it:
 * - Its file system layer has no shared memory, so a WAL database opens only in EXCLUSIVE
 *   locking mode (the WAL index then lives in the heap). The driver always sets it first thing.
 * - Its lock is a `<file>.lock` directory, taken once and held until close in exclusive mode. A
 *   process that dies with the file open leaves the directory behind, and every later open would
 *   answer "database is locked". The driver writes the holder's pid next to it
 *   (`<file>.lock-owner`) and removes a lock whose holder is gone. (Two processes opening the
 *   same file at the same instant could both see no holder: the agent's own lock file is what
 *   keeps a second process out; this only has to survive a crash.)
 * - Statements must be finalized by hand, and close does not do it: the driver keeps the
 *   prepared statements in a bounded cache keyed by SQL, re-prepares an evicted one on its next
 *   use, and finalizes them all on close.
 * - Named parameters are bound with their prefix (`@id`) and an unknown key is an error; the
 *   driver binds the statement's own parameters from the caller's object, as better-sqlite3 does.
 * - `get` answers null for no row and leaves the statement running; the driver answers
 *   undefined and resets it.
 * - A statement whose last step failed answers that error again when reset or finalized: the
 *   driver finalizes it and prepares it afresh on its next use.
 */

/** How many compiled statements stay prepared; the store's own are about twenty. */
const STATEMENT_CACHE = 256;

interface WasmStatementHandle extends Wasm.Statement {
  /** Internal reset of node-sqlite3-wasm; used when present. */
  _reset?: () => boolean;
}

class WasmStatement implements SqliteStatement {
  handle: WasmStatementHandle | null = null;
  /** Named parameters as written in the SQL (`@id`), each once, in order. */
  private readonly names: string[];

  constructor(
    private readonly owner: WasmDatabase,
    readonly sql: string,
  ) {
    this.names = namedParameters(sql);
  }

  run(...params: BindParameters): RunResult {
    const h = this.owner.use(this);
    try {
      return h.run(this.bind(params));
    } catch (e) {
      this.owner.discard(this);
      throw e;
    }
  }

  get<R = unknown>(...params: BindParameters): R | undefined {
    const h = this.owner.use(this);
    try {
      if (!h._reset) return h.all(this.bind(params))[0] as R | undefined;
      const row = h.get(this.bind(params));
      // Done with it: a statement left mid-result would hold its read snapshot.
      h._reset();
      return (row ?? undefined) as R | undefined;
    } catch (e) {
      this.owner.discard(this);
      throw e;
    }
  }

  all<R = unknown>(...params: BindParameters): R[] {
    const h = this.owner.use(this);
    try {
      return h.all(this.bind(params)) as R[];
    } catch (e) {
      this.owner.discard(this);
      throw e;
    }
  }

  private bind(params: BindParameters): Wasm.BindValues | undefined {
    if (params.length === 0) return undefined;
    const first = params[0];
    if (params.length === 1 && isPlainObject(first)) {
      const bound: Record<string, Wasm.JSValue> = {};
      for (const name of this.names) {
        const value = first[name.slice(1)];
        if (value === undefined) throw new RangeError(`Missing named parameter "${name.slice(1)}"`);
        bound[name] = value as Wasm.JSValue;
      }
      return bound;
    }
    // better-sqlite3 also takes positional values as one array.
    if (params.length === 1 && Array.isArray(first)) return first as Wasm.JSValue[];
    return params as Wasm.JSValue[];
  }
}

class WasmDatabase implements SqliteDatabase {
  /** Statements with a live handle, least recently used first. */
  private readonly live = new Map<string, WasmStatement>();
  private savepoints = 0;

  constructor(
    private db: Wasm.Database | null,
    readonly file: string,
    readonly engine: EngineInfo,
    private readonly ownerFile: string | undefined,
  ) {}

  get isOpen(): boolean {
    return this.db !== null;
  }

  get inTransaction(): boolean {
    return this.db?.inTransaction ?? false;
  }

  private open(): Wasm.Database {
    if (!this.db) throw new TypeError('The database connection is not open');
    return this.db;
  }

  prepare(sql: string): SqliteStatement {
    const cached = this.live.get(sql);
    if (cached) return cached;
    const s = new WasmStatement(this, sql);
    this.use(s); // Compile now, so that a syntax error surfaces here as with better-sqlite3.
    return s;
  }

  /** The statement's compiled handle, prepared again if it was evicted. */
  use(s: WasmStatement): WasmStatementHandle {
    const db = this.open();
    if (s.handle) {
      if (this.live.get(s.sql) === s) {
        this.live.delete(s.sql);
        this.live.set(s.sql, s);
      }
      return s.handle;
    }
    s.handle = db.prepare(s.sql) as WasmStatementHandle;
    const previous = this.live.get(s.sql);
    if (previous && previous !== s) this.discard(previous);
    this.live.set(s.sql, s);
    if (this.live.size > STATEMENT_CACHE) this.discard(this.live.values().next().value!);
    return s.handle;
  }

  /**
   * Finalizes the statement's handle; its next use prepares it again. After an error this is
   * how the statement is made usable again: the engine cannot reset a statement whose last step
   * failed without answering that error once more.
   */
  discard(s: WasmStatement): void {
    if (this.live.get(s.sql) === s) this.live.delete(s.sql);
    const h = s.handle;
    s.handle = null;
    if (!h || h.isFinalized) return;
    try {
      h.finalize();
    } catch {
      // Finalizing answers the statement's last error, which its caller has already had.
    }
  }

  exec(sql: string): void {
    this.open().exec(sql);
  }

  transaction<T>(fn: () => T): T {
    const db = this.open();
    if (!db.inTransaction) {
      this.prepare('BEGIN').run();
      try {
        const result = fn();
        assertNotPromise(result);
        this.prepare('COMMIT').run();
        return result;
      } catch (e) {
        if (db.inTransaction) this.prepare('ROLLBACK').run();
        throw e;
      }
    }
    const name = `conveyor_sp${++this.savepoints}`;
    db.exec(`SAVEPOINT ${name}`);
    try {
      const result = fn();
      assertNotPromise(result);
      db.exec(`RELEASE ${name}`);
      return result;
    } catch (e) {
      if (db.inTransaction) db.exec(`ROLLBACK TO ${name}; RELEASE ${name}`);
      throw e;
    } finally {
      this.savepoints--;
    }
  }

  pragma(name: string, value?: string | number): SqlValue | undefined {
    const row = this.open().get(`PRAGMA ${pragmaText(name, value)}`);
    if (!row) return undefined;
    return Object.values(row)[0] as SqlValue;
  }

  close(): void {
    const db = this.db;
    if (!db) return;
    for (const s of [...this.live.values()]) this.discard(s);
    this.db = null;
    db.close();
    if (this.ownerFile && readOwner(this.ownerFile) === process.pid) fs.rmSync(this.ownerFile, { force: true });
  }
}

export function openWasm(
  file: string,
  lib: typeof import('node-sqlite3-wasm'),
  info: Omit<EngineInfo, 'name' | 'sqliteVersion'>,
): SqliteDatabase {
  const sqliteVersion = versionOf(lib);
  if (isMemory(file)) return new WasmDatabase(new lib.Database(file), file, { ...info, name: 'wasm', sqliteVersion }, undefined);
  // The engine's file layer names its lock after the absolute path.
  const abs = path.resolve(file);
  const lockDir = `${abs}.lock`;
  const ownerFile = `${abs}.lock-owner`;
  const holder = liveWasmLockHolder(abs);
  if (holder !== undefined) {
    throw new Error(`${file} is already open in process ${holder}${holder === process.pid ? ' (this one)' : ''}`);
  }
  // Left by a process that died with the database open.
  fs.rmSync(lockDir, { recursive: true, force: true });

  const db = new lib.Database(abs);
  try {
    // Before anything reads the file: without shared memory, a WAL file opens only this way.
    db.get('PRAGMA locking_mode = EXCLUSIVE');
    // Takes the lock now (a read keeps it in exclusive mode), then says who holds it.
    db.get('SELECT count(*) FROM sqlite_master');
    fs.writeFileSync(ownerFile, String(process.pid));
    return new WasmDatabase(db, file, { ...info, name: 'wasm', sqliteVersion }, ownerFile);
  } catch (e) {
    db.close();
    throw e;
  }
}

/** The pid of a live process holding `file` open with the WASM engine, if any. */
export function liveWasmLockHolder(file: string): number | undefined {
  if (isMemory(file)) return undefined;
  const abs = path.resolve(file);
  if (!fs.existsSync(`${abs}.lock`)) return undefined;
  const pid = readOwner(`${abs}.lock-owner`);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

function readOwner(ownerFile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(ownerFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isMemory(file: string): boolean {
  return file === '' || file === ':memory:' || file.startsWith('file::memory:');
}

const versions = new WeakMap<object, string>();

function versionOf(lib: typeof import('node-sqlite3-wasm')): string {
  let v = versions.get(lib);
  if (v === undefined) {
    const db = new lib.Database(':memory:');
    try {
      v = String((db.get('SELECT sqlite_version() AS v') as { v: string }).v);
    } finally {
      db.close();
    }
    versions.set(lib, v);
  }
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function assertNotPromise(v: unknown): void {
  if (v && typeof (v as { then?: unknown }).then === 'function') {
    throw new TypeError('Transaction function cannot return a promise');
  }
}

/**
 * The named parameters of a statement (`:a`, `@a`, `$a`), each once, in order of first use.
 * Skips string literals, quoted identifiers and comments, as SQLite's tokenizer does.
 */
export function namedParameters(sql: string): string[] {
  const names: string[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql[i];
    if (c === "'" || c === '"' || c === '`') {
      const end = sql.indexOf(c, i + 1);
      // A doubled quote inside the literal is an escaped quote: keep scanning.
      i = end < 0 ? n : end + 1;
      continue;
    }
    if (c === '[') {
      const end = sql.indexOf(']', i + 1);
      i = end < 0 ? n : end + 1;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i + 2);
      i = end < 0 ? n : end + 1;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
      continue;
    }
    if ((c === ':' || c === '@' || c === '$') && i + 1 < n && /[A-Za-z0-9_]/.test(sql[i + 1])) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j])) j++;
      const name = sql.slice(i, j);
      if (!names.includes(name)) names.push(name);
      i = j;
      continue;
    }
    i++;
  }
  return names;
}
