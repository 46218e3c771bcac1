/**
 * The SQL seam under the store: the few operations it needs, on either of two SQLite engines.
 *
 * - `native`: better-sqlite3, a compiled Node addon. The fastest, but the binary only loads in
 *   the runtime it was built for (a build for Node 20 does not load in Electron run as Node).
 * - `wasm`: node-sqlite3-wasm, SQLite compiled to WebAssembly, file access through `node:fs`.
 *   Loads in any Node-compatible runtime; no native build.
 *
 * Both read and write the same file format, so a database written by one opens with the other.
 * They do NOT share locks (the native engine uses POSIX/Windows byte-range locks, the WASM engine
 * a `<file>.lock` directory), so the two must never have one file open at the same time: the
 * agent's own lock file guarantees one process per workspace.
 */
import { openNative } from './driver-native';
import { openWasm } from './driver-wasm';

export type EngineName = 'native' | 'wasm';
export type EngineChoice = EngineName | 'auto';

/**
 * A value SQLite stores and returns. Integers beyond 2^53 come back as bigint. The native engine
 * binds every JS number as a REAL and the WASM engine binds whole numbers as INTEGER: the same in
 * a column declared INTEGER or REAL (affinity converts), different in an untyped expression.
 */
export type SqlValue = number | bigint | string | Uint8Array | null;

/**
 * Parameters of a statement: positional values (`?`), or one object whose keys are the names of
 * the statement's named parameters without their prefix (`@id`, `:id` and `$id` all take `id`).
 * Keys that the statement does not use are ignored; a named parameter with no key is an error.
 */
export type BindParameters = SqlValue[] | [object];

export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

/** A prepared statement. Prepare once and reuse: both engines keep it compiled. */
export interface SqliteStatement {
  /** Executes a statement that returns no rows (INSERT, UPDATE, DELETE, DDL). */
  run(...params: BindParameters): RunResult;
  /** The first row, or undefined when there is none. */
  get<R = unknown>(...params: BindParameters): R | undefined;
  /** Every row. */
  all<R = unknown>(...params: BindParameters): R[];
}

/** Which engine a database runs on, and why: for the agent's log and health. */
export interface EngineInfo {
  /** The engine in use. */
  name: EngineName;
  /** What was asked for. */
  requested: EngineChoice;
  /** Where the request came from: the caller, the `CONVEYOR_SQLITE` variable, or the default. */
  via: 'option' | 'env' | 'default';
  /** `select sqlite_version()` of the engine in use. */
  sqliteVersion: string;
  /** When `auto` fell back to WASM: why the native binding did not load. */
  nativeError?: string;
}

export interface SqliteDatabase {
  readonly engine: EngineInfo;
  /** The file as opened (`:memory:` for an in-memory database). */
  readonly file: string;
  readonly isOpen: boolean;
  readonly inTransaction: boolean;
  prepare(sql: string): SqliteStatement;
  /** Runs one or more statements separated by semicolons; no parameters, no result. */
  exec(sql: string): void;
  /**
   * Runs `fn` in a transaction and returns its result: committed when it returns, rolled back
   * when it throws. Nested calls use savepoints. `fn` must be synchronous.
   */
  transaction<T>(fn: () => T): T;
  /**
   * `PRAGMA name` or `PRAGMA name = value`; answers the first column of the first row (undefined
   * when the pragma answers nothing). `name` and `value` are words or numbers, never user input.
   */
  pragma(name: string, value?: string | number): SqlValue | undefined;
  /** Closes the database (finalizing every statement). Idempotent. */
  close(): void;
}

/** How an engine's library is loaded; replaced in tests to simulate a binding that fails. */
export interface EngineLoaders {
  native: () => typeof import('better-sqlite3');
  wasm: () => typeof import('node-sqlite3-wasm');
}

export interface OpenOptions {
  /**
   * `auto` (the default): the native engine when its binding loads in this runtime, else WASM.
   * Without this option, the environment variable `CONVEYOR_SQLITE=native|wasm|auto` decides.
   */
  engine?: EngineChoice;
  /** Replaces how the libraries are loaded (tests). */
  loaders?: Partial<EngineLoaders>;
}

/** The environment variable that forces an engine when the caller does not choose one. */
export const ENGINE_ENV = 'CONVEYOR_SQLITE';

const ENGINE_CHOICES: readonly EngineChoice[] = ['auto', 'native', 'wasm'];

export const DEFAULT_LOADERS: EngineLoaders = {
  // Required lazily: loading an engine that is not used costs time (WASM compile) or fails (ABI).
  native: () => require('better-sqlite3') as typeof import('better-sqlite3'),
  wasm: () => require('node-sqlite3-wasm') as typeof import('node-sqlite3-wasm'),
};

/** Opens (creating if needed) a SQLite database on the engine chosen by `options` or the environment. */
export function openDatabase(file: string, options: OpenOptions = {}): SqliteDatabase {
  const { requested, via } = resolveChoice(options.engine);
  const loaders: EngineLoaders = { ...DEFAULT_LOADERS, ...options.loaders };
  const base = { requested, via };

  if (requested === 'wasm') return openWasm(file, loaders.wasm(), base);

  const probe = probeNative(loaders.native);
  if (requested === 'native') {
    if (!probe.ok) {
      throw new Error(
        `the native SQLite engine (better-sqlite3) does not load in this runtime (${runtimeName()}): ${probe.error}` +
          (via === 'env' ? `; unset ${ENGINE_ENV} or set it to "wasm" or "auto"` : ''),
      );
    }
    return openNative(file, probe.ctor, { ...base, sqliteVersion: probe.version });
  }
  if (probe.ok) return openNative(file, probe.ctor, { ...base, sqliteVersion: probe.version });
  return openWasm(file, loaders.wasm(), { ...base, nativeError: probe.error });
}

function resolveChoice(option: EngineChoice | undefined): { requested: EngineChoice; via: EngineInfo['via'] } {
  if (option !== undefined) {
    if (!ENGINE_CHOICES.includes(option)) throw new Error(`unknown SQLite engine "${String(option)}"; use ${ENGINE_CHOICES.join(', ')}`);
    return { requested: option, via: 'option' };
  }
  const env = process.env[ENGINE_ENV]?.trim().toLowerCase();
  if (env) {
    if (!ENGINE_CHOICES.includes(env as EngineChoice)) {
      throw new Error(`${ENGINE_ENV}="${process.env[ENGINE_ENV]}" is not an engine; set it to ${ENGINE_CHOICES.join(', ')} or unset it`);
    }
    return { requested: env as EngineChoice, via: 'env' };
  }
  return { requested: 'auto', via: 'default' };
}

type Probe = { ok: true; ctor: typeof import('better-sqlite3'); version: string } | { ok: false; error: string };
const probes = new WeakMap<() => unknown, Probe>();

/**
 * Whether the native binding loads here. better-sqlite3 loads its `.node` file when the first
 * database is constructed, so this opens an in-memory one: a failure here is the runtime (ABI,
 * platform, missing binary), never the user's file. Answered once per loader.
 */
function probeNative(load: EngineLoaders['native']): Probe {
  let probe = probes.get(load);
  if (!probe) {
    try {
      const ctor = load();
      const db = new ctor(':memory:');
      const version = (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
      db.close();
      probe = { ok: true, ctor, version };
    } catch (e) {
      probe = { ok: false, error: firstLine(e) };
    }
    probes.set(load, probe);
  }
  return probe;
}

function runtimeName(): string {
  const electron = process.versions.electron;
  return electron ? `Electron ${electron}, ABI ${process.versions.modules}` : `Node ${process.version}, ABI ${process.versions.modules}`;
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0].trim();
}

/** Names accepted by `pragma()`: a word, and a value that is a word or a number. */
export function pragmaText(name: string, value?: string | number): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`not a pragma name: ${name}`);
  if (value === undefined) return name;
  if (typeof value === 'number' ? !Number.isFinite(value) : !/^-?[A-Za-z0-9_.]+$/.test(value)) {
    throw new Error(`not a pragma value: ${String(value)}`);
  }
  return `${name} = ${value}`;
}
