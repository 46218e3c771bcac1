/**
 * Finding and reading the config file of a folder.
 */

import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ConfigState, Diagnostic, SourceLocation } from '../protocol';
import { STARTER_CONFIG, analyzeConfigText, keyLocation } from './analyzer';

/** The names the config file may have, in order of preference. */
export const CONFIG_FILE_NAMES: readonly string[] = ['conveyor.yml', 'conveyor.yaml'];

const AT_START = { start: { line: 1, column: 1 }, end: { line: 1, column: 1 } };

async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}

function readFailure(file: string, err: unknown): Diagnostic {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const name = path.basename(file);
  let reason: string;
  let fix: string;
  switch (code) {
    case 'EISDIR':
      reason = 'it is a folder';
      fix = `replace the folder with a ${name} file`;
      break;
    case 'EACCES':
    case 'EPERM':
      reason = 'permission denied';
      fix = `let your user read ${name}, e.g. "chmod u+r ${name}"`;
      break;
    default:
      reason = err instanceof Error ? err.message : String(err);
      fix = `check that ${name} is a readable text file`;
  }
  return {
    severity: 'error',
    code: 'unreadable-file',
    message: `cannot read ${name}: ${reason}`,
    file,
    range: AT_START,
    fix,
  };
}

/** Finds conveyor.yml (or .yaml) in `dir` and analyzes it. Never throws. */
export async function loadConfig(dir: string): Promise<ConfigState> {
  const present: string[] = [];
  for (const name of CONFIG_FILE_NAMES) {
    const p = path.join(dir, name);
    if (await exists(p)) present.push(p);
  }
  if (present.length === 0) {
    const file = path.join(dir, CONFIG_FILE_NAMES[0]);
    return {
      valid: false,
      file,
      diagnostics: [
        {
          severity: 'error',
          code: 'missing-file',
          message: `no ${CONFIG_FILE_NAMES.join(' or ')} in ${dir}`,
          file,
          range: AT_START,
          fix: `create ${CONFIG_FILE_NAMES[0]} there, e.g. "${STARTER_CONFIG}"`,
        },
      ],
    };
  }
  const file = present[0];
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    return { valid: false, file, diagnostics: [readFailure(file, err)] };
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const state = analyzeConfigText(text, file, { defaultName: path.basename(path.resolve(dir)) || undefined });
  for (const other of present.slice(1)) {
    state.diagnostics.push({
      severity: 'warning',
      code: 'duplicate-name',
      message: `${path.basename(other)} is ignored: ${path.basename(file)} is the config`,
      file: other,
      range: AT_START,
      fix: `keep a single config file: merge ${path.basename(other)} into ${path.basename(file)} and delete it`,
    });
  }
  return state;
}

/**
 * Where the key at a data path (`['environments', 'web', 'env', 'PORT']`) is written in the config
 * file as it is now on disk, for messages that point at what to fix. Undefined when the file does
 * not have it, or cannot be read.
 */
export function locateConfigKey(file: string, segments: readonly string[]): SourceLocation | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return keyLocation(text, file, segments);
}
