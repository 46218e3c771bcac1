import * as assert from 'node:assert/strict';
import { AnsiText, ansiLines, lineText, xterm256, type Line } from '../../webview/shared/ansi';

/** A line as [text, classes] pairs (and colours when set), for compact expectations. */
function pairs(line: Line): (string | [string, string])[] {
  return line.map((s) => (s.fg || s.bg ? [s.text, `${s.classes}|${s.fg ?? ''}|${s.bg ?? ''}`] : s.classes ? [s.text, s.classes] : s.text));
}

describe('ANSI log text', () => {
  it('turns SGR colours and styles into classes, and resets them', () => {
    const [line] = ansiLines('plain \x1b[32mgreen\x1b[0m \x1b[1;31mbold red\x1b[22m red\x1b[39m end\n');
    assert.deepEqual(pairs(line), ['plain ', ['green', 'ansi-fg-2'], ' ', ['bold red', 'ansi-fg-1 ansi-bold'], [' red', 'ansi-fg-1'], ' end']);
  });

  it('knows bright colours, backgrounds, italic, underline, strike and inverse', () => {
    const [line] = ansiLines('\x1b[94mb\x1b[0m\x1b[41;97mw\x1b[0m\x1b[3;4;9mx\x1b[23;24;29my\x1b[0m\x1b[7mz\x1b[27m');
    assert.deepEqual(pairs(line), [['b', 'ansi-fg-12'], ['w', 'ansi-fg-15 ansi-bg-1'], ['x', 'ansi-italic ansi-underline ansi-strike'], 'y', ['z', 'ansi-inverse-fg ansi-inverse-bg']]);
  });

  it('gives 256-colour and true-colour codes as CSS colours, the first 16 as classes', () => {
    const [line] = ansiLines('\x1b[38;5;196ma\x1b[38;5;9mb\x1b[48;5;244mc\x1b[0m\x1b[38;2;10;20;30md');
    assert.deepEqual(pairs(line), [['a', '|rgb(255, 0, 0)|'], ['b', 'ansi-fg-9'], ['c', 'ansi-fg-9||rgb(128, 128, 128)'], ['d', '|rgb(10, 20, 30)|']]);
    assert.equal(xterm256(16), 'rgb(0, 0, 0)');
    assert.equal(xterm256(231), 'rgb(255, 255, 255)');
    assert.equal(xterm256(232), 'rgb(8, 8, 8)');
  });

  it('drops other escape sequences (cursor moves, erase, OSC titles) and control characters', () => {
    const lines = ansiLines('a\x1b[2Kb\x1b[1Ac\x1b]0;title\x07d\x1b]8;;http://x\x1b\\e\x07\x08f\n');
    assert.deepEqual(lines.map(lineText), ['abcdef']);
  });

  it('keeps a style and an escape sequence that chunks split', () => {
    const t = new AnsiText();
    t.append('one \x1b[3');
    t.append('1mred');
    t.append(' still\nnext\x1b');
    t.append('[0m plain\n');
    assert.deepEqual(pairs(t.lines[0]), ['one ', ['red still', 'ansi-fg-1']]);
    assert.deepEqual(pairs(t.lines[1]), [['next', 'ansi-fg-1'], ' plain']);
    assert.equal(t.completeLines.length, 2);
  });

  it('starts a line over at a lone carriage return, and reads \\r\\n as a newline even when split', () => {
    assert.deepEqual(ansiLines('progress 10%\rprogress 100%\ndone\r\n').map(lineText), ['progress 100%', 'done']);
    const t = new AnsiText();
    t.append('a\r');
    t.append('\nb\r');
    t.append('c');
    assert.deepEqual(t.plainLines(), ['a', 'c']);
  });

  it('keeps markup as text', () => {
    const [line] = ansiLines('<img src=x onerror=alert(1)> \x1b[31m<b>x</b>\x1b[0m');
    assert.equal(lineText(line), '<img src=x onerror=alert(1)> <b>x</b>');
  });

  it('says which line a chunk changed first', () => {
    const t = new AnsiText();
    assert.equal(t.append('a\nb'), 0);
    assert.equal(t.append('c\nd\n'), 1);
    assert.equal(t.append('e'), 3);
  });

  it('drops a stray ESC without losing the text after it', () => {
    assert.deepEqual(ansiLines('a\x1b!b\n').map(lineText), ['a!b']);
  });
});
