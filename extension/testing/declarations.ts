/**
 * Where tests and suites are declared in a test file, found by reading its text: reports give
 * a failure's line (the assertion) but not where the test itself starts, and the Testing view
 * puts its gutter icons and "run test" actions on the declaration.
 *
 * A light scan, not a parser: calls of `describe`/`context`/`suite` and `it`/`test`/`specify`
 * (with `.only`, `.skip`, `.todo`) whose first argument is a plain string literal. Titles built
 * at run time (template literals with `${}`, variables) are not found; their items keep the
 * range the report gave, if any.
 */

export interface Declaration {
  kind: 'suite' | 'test';
  title: string;
  /** 0-based. */
  line: number;
  /** 0-based column of the call's name. */
  column: number;
}

const CALL = /\b(describe|context|suite|it|test|specify)(?:\.(?:only|skip|todo))?\s*\(\s*(['"`])((?:\\.|(?!\2)[^\\\n])*)\2/g;

/** Every declaration in `text`, in file order. */
export function scanDeclarations(text: string): Declaration[] {
  const found: Declaration[] = [];
  const lines = text.split(/\r?\n/);
  for (let line = 0; line < lines.length; line++) {
    const src = lines[line];
    CALL.lastIndex = 0;
    for (let m = CALL.exec(src); m; m = CALL.exec(src)) {
      if (m[2] === '`' && m[3].includes('${')) continue;
      const kind = m[1] === 'describe' || m[1] === 'context' || m[1] === 'suite' ? 'suite' : 'test';
      found.push({ kind, title: unescape(m[3]), line, column: m.index });
    }
  }
  return found;
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

/**
 * The declaration of a suite whose full title (enclosing titles joined by spaces, as reports
 * write it) is `suite`: the last suite declared with that title, or whose title ends it.
 */
export function findSuite(decls: readonly Declaration[], suite: string): Declaration | undefined {
  if (!suite) return undefined;
  const suites = decls.filter((d) => d.kind === 'suite');
  return suites.find((d) => d.title === suite) ?? [...suites].reverse().find((d) => suite.endsWith(` ${d.title}`));
}

/**
 * The declaration of test `name` in suite `suite`: among the tests with that title, the first
 * one after the suite's declaration (or the first at all).
 */
export function findTest(decls: readonly Declaration[], suite: string, name: string): Declaration | undefined {
  const tests = decls.filter((d) => d.kind === 'test' && d.title === name);
  if (tests.length <= 1) return tests[0];
  const owner = findSuite(decls, suite);
  return (owner && tests.find((t) => t.line > owner.line || (t.line === owner.line && t.column > owner.column))) ?? tests[0];
}
