import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { err, ok, type Result } from '../util/lifecycle';
import { mapLimit } from './http';
import { parseJson } from './json';
import { advisoryFor, isOsvRecord, npmPackagesOf, type OsvRecord } from './osv';
import { addMatch, type Matches, type PackageQuery, type SourceAnswer, type SourceContext } from './source';

/** Files read at once. */
const READ_CONCURRENCY = 16;

/**
 * The `osv-folder` source: a folder (read recursively) of OSV records in JSON, one record (or a
 * list of records) per file, as the OSV database's exports and GitHub's advisory-database
 * repository hold them. Records are indexed by npm package name once, then each version is
 * matched locally. A file that is not JSON makes the source unreachable, naming the file and
 * line: a scan never passes on an advisory it could not read.
 */
export async function queryOsvFolder(folder: string, queries: PackageQuery[], ctx: SourceContext): Promise<SourceAnswer> {
  const label = `OSV folder ${folder}`;
  const index = await indexFolder(folder, new Set(queries.map((q) => q.name)), ctx.signal);
  if (!index.ok) return { label, result: index };
  const matches: Matches = new Map();
  for (const q of queries) {
    for (const record of index.value.get(q.name) ?? []) {
      const advisory = advisoryFor(record, q.name, q.version);
      if (advisory) addMatch(matches, q, advisory);
    }
  }
  return { label, result: ok(matches) };
}

/** The records of the folder about the wanted packages, by package name. */
async function indexFolder(folder: string, wanted: Set<string>, signal: AbortSignal | undefined): Promise<Result<Map<string, OsvRecord[]>, string>> {
  let files: string[];
  try {
    const entries = await fs.readdir(folder, { recursive: true, withFileTypes: true });
    files = entries.filter((e) => e.isFile() && e.name.endsWith('.json')).map((e) => path.join(e.parentPath, e.name));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return err(`the folder ${folder} does not exist`);
    if (code === 'ENOTDIR') return err(`${folder} is a file, not a folder of OSV records`);
    return err(`the folder ${folder} cannot be read: ${(e as Error).message}`);
  }
  if (files.length === 0) return err(`${folder} holds no OSV records (*.json files)`);
  const index = new Map<string, OsvRecord[]>();
  let records = 0;
  const problems = await mapLimit(files.sort(), READ_CONCURRENCY, async (file): Promise<string | null> => {
    if (signal?.aborted) return 'cancelled';
    const rel = path.relative(folder, file);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      return `${rel} cannot be read: ${(e as Error).message}`;
    }
    const parsed = parseJson(rel, text);
    if (!parsed.ok) return parsed.error;
    for (const record of Array.isArray(parsed.value) ? parsed.value : [parsed.value]) {
      // Other JSON beside the records (an index, a schema) holds no advisory.
      if (!isOsvRecord(record)) continue;
      records++;
      for (const name of npmPackagesOf(record)) {
        if (!wanted.has(name)) continue;
        const list = index.get(name);
        if (list) list.push(record);
        else index.set(name, [record]);
      }
    }
    return null;
  });
  const problem = problems.find((p) => p !== null);
  if (problem) return err(problem === 'cancelled' ? problem : `${problem} (in ${folder})`);
  if (records === 0) return err(`${folder} holds no OSV records: its JSON files have no "id" and "affected"`);
  return ok(index);
}
