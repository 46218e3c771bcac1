import type BetterSqlite3 from 'better-sqlite3';
import { liveWasmLockHolder } from './driver-wasm';
import { pragmaText, type EngineInfo, type SqliteDatabase, type SqliteStatement, type SqlValue } from './sqlite';

/** better-sqlite3 already has the shape of the seam: statements are passed through unwrapped. */
class NativeDatabase implements SqliteDatabase {
  constructor(
    private readonly db: BetterSqlite3.Database,
    readonly file: string,
    readonly engine: EngineInfo,
  ) {}

  get isOpen(): boolean {
    return this.db.open;
  }

  get inTransaction(): boolean {
    return this.db.inTransaction;
  }

  prepare(sql: string): SqliteStatement {
    return this.db.prepare(sql) as unknown as SqliteStatement;
  }

  exec(sql: string): void {
    this.db.exec(sql);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  pragma(name: string, value?: string | number): SqlValue | undefined {
    return this.db.pragma(pragmaText(name, value), { simple: true }) as SqlValue | undefined;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export function openNative(
  file: string,
  ctor: typeof import('better-sqlite3'),
  info: Omit<EngineInfo, 'name'>,
): SqliteDatabase {
  // The WASM engine's lock is a directory this engine does not know about: refuse to open a
  // file that a live process has open with it, rather than write under it.
  const holder = liveWasmLockHolder(file);
  if (holder !== undefined) {
    throw new Error(`${file} is open in process ${holder} (WASM SQLite engine); stop that process first`);
  }
  // Reads nothing yet: the file is opened, locked and read by the first statement.
  return new NativeDatabase(new ctor(file), file, { ...info, name: 'native' });
}
