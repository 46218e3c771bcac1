import * as path from 'node:path';
import type { TestResult } from '../../agent/protocol';

/**
 * Which file a test belongs to. A result's `location` is the test's own file when it passed,
 * but the failing assertion's place when it failed, which may be a helper or the code under
 * test; the Testing view files the test under its test file all the same.
 */
export class TestFileResolver {
  private readonly patterns: RegExp[];

  /**
   * @param root the workspace folder (absolute)
   * @param globs `watch.tests` of conveyor.yml, relative to the folder
   * @param known test files already seen (absolute)
   */
  constructor(
    private readonly root: string,
    globs: readonly string[],
    private readonly known: (file: string) => boolean,
  ) {
    this.patterns = globs.map(globToRegExp);
  }

  /** True when `file` (absolute) is a test file: declared by watch.tests, seen before, or named like one. */
  isTestFile(file: string): boolean {
    if (this.known(file)) return true;
    const rel = path.relative(this.root, file).split(path.sep).join('/');
    if (rel.startsWith('../') || path.isAbsolute(rel)) return LOOKS_LIKE_TEST.test(file);
    if (this.patterns.length) return this.patterns.some((re) => re.test(rel));
    return LOOKS_LIKE_TEST.test(rel);
  }

  /**
   * The test file of a result: its location when that is a test file (always so for a passed
   * test), else the first stack frame in a test file, else `known()` (the file of a test
   * already known by suite and name), else the location's file. Undefined when the report
   * placed it nowhere.
   */
  fileOf(r: TestResult, known: () => string | undefined): string | undefined {
    const loc = r.location?.file;
    if (loc && (r.status !== 'failed' || this.isTestFile(loc))) return loc;
    for (const frame of stackFiles(r.stack)) if (this.isTestFile(frame)) return frame;
    return known() ?? loc;
  }
}

const LOOKS_LIKE_TEST = /(^|\/)(tests?|__tests__|specs?)\/|[._-](test|spec)\.[cm]?[jt]sx?$/;

/** Absolute files named by a stack's frames, in order. */
export function stackFiles(stack: string | null): string[] {
  if (!stack) return [];
  const files: string[] = [];
  const frame = /(?:\(|\s|^)(?:file:\/\/)?((?:\/|[A-Za-z]:[\\/])[^():\n]+):\d+(?::\d+)?\)?/gm;
  for (let m = frame.exec(stack); m; m = frame.exec(stack)) files.push(m[1].trim());
  return files;
}

/**
 * A glob of conveyor.yml (`test/**\/*.test.{js,ts}`) as a RegExp over workspace-relative paths
 * with forward slashes: `**` any folders, `*` and `?` within a name, `{a,b}` alternatives,
 * `[...]` classes.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  let depth = 0;
  const g = glob.replace(/^\.\//, '');
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === '*') {
      if (g[i + 1] === '*') {
        const slash = g[i + 2] === '/';
        re += slash ? '(?:[^/]*/)*' : '.*';
        i += slash ? 2 : 1;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '{') {
      depth++;
      re += '(?:';
    } else if (c === '}' && depth > 0) {
      depth--;
      re += ')';
    } else if (c === ',' && depth > 0) re += '|';
    else if (c === '[') {
      const end = g.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${g.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^$()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
