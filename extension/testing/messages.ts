import * as vscode from 'vscode';
import type { SourceLocation, TestResult } from '../../agent/protocol';
import { Commands } from '../constants';

/** The protocol's 1-based line and column as a VS Code position. */
export function toPosition(loc: SourceLocation): vscode.Position {
  return new vscode.Position(Math.max(0, loc.line - 1), Math.max(0, loc.column - 1));
}

export function toLocation(loc: SourceLocation | null): vscode.Location | undefined {
  return loc ? new vscode.Location(vscode.Uri.file(loc.file), toPosition(loc)) : undefined;
}

/** A test's name as the user reads it: its suite path, then its title. */
export function fullName(r: Pick<TestResult, 'suite' | 'name'>): string {
  return r.suite ? `${r.suite} ${r.name}` : r.name;
}

/** The failure's message without the runner's blank lines and trailing space. */
function tidy(message: string | null): string {
  return (message ?? 'failed')
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l, i, all) => l !== '' || (i > 0 && all[i - 1] !== ''))
    .join('\n')
    .trim();
}

/**
 * The Test Results message of a failure: a diff when the report has expected and actual values
 * (the peek view shows them side by side), else the message; placed at the failing line.
 */
export function testMessage(r: TestResult): vscode.TestMessage {
  const text = tidy(r.message);
  const message = r.expected !== null || r.actual !== null ? vscode.TestMessage.diff(text, r.expected ?? '', r.actual ?? '') : new vscode.TestMessage(text);
  message.location = toLocation(r.location);
  return message;
}

/** The text of a failure's diagnostic: the test, the message, and expected/actual when known. */
export function diagnosticText(r: TestResult): string {
  const lines = [`${fullName(r)}: ${tidy(r.message)}`];
  if (r.expected !== null) lines.push(`expected: ${r.expected}`);
  if (r.actual !== null) lines.push(`actual: ${r.actual}`);
  return lines.join('\n');
}

/**
 * A failure as a diagnostic at its location: from the failing column to the end of the line
 * (`lineText`, when the file could be read), with a code that links to the run.
 */
export function failureDiagnostic(r: TestResult & { location: SourceLocation }, runId: number, folder: string, lineText: string | undefined): vscode.Diagnostic {
  const start = toPosition(r.location);
  const end = lineText !== undefined && lineText.trimEnd().length > start.character ? new vscode.Position(start.line, lineText.trimEnd().length) : start;
  const d = new vscode.Diagnostic(new vscode.Range(start, end), diagnosticText(r), vscode.DiagnosticSeverity.Error);
  d.source = 'Conveyor tests';
  const args = encodeURIComponent(JSON.stringify([folder, runId]));
  d.code = { value: `run #${runId}`, target: vscode.Uri.parse(`command:${Commands.revealRun}?${args}`) };
  return d;
}
