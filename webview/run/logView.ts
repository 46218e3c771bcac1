/**
 * A stage's log: lines with their ANSI colours, a search box that marks every match and jumps
 * between them (Enter, Shift+Enter, or the arrows), and the count of matches.
 */
import type { Line } from '../shared/ansi';
import { lineText } from '../shared/ansi';
import { debounce, h } from '../shared/dom';
import { segmentNodes } from '../shared/render';
import { findMatches, markSegments, type Match } from '../shared/search';

/** The most lines drawn; a longer log shows its end (the search still covers every line). */
const MAX_DRAWN = 20_000;

/** The log pane: a search toolbar over the lines; `el` is its element. */
export class LogView {
  readonly el: HTMLElement;
  private readonly pre: HTMLElement;
  private readonly count: HTMLElement;
  private readonly field: HTMLElement & { value: string };
  private lines: Line[] = [];
  private plain: string[] = [];
  private query = '';
  private matches: Match[] = [];
  private current = -1;
  private note = '';

  constructor() {
    this.field = h('vscode-textfield', { class: 'log-search', attrs: { placeholder: 'Search the log', 'aria-label': 'Search the log' } }) as HTMLElement & { value: string };
    this.count = h('span', { class: 'log-count muted', attrs: { 'aria-live': 'polite' } });
    const prev = h('vscode-button', { class: 'log-prev', attrs: { secondary: true, title: 'Previous match (Shift+Enter)' }, on: { click: () => this.step(-1) } }, '↑');
    const next = h('vscode-button', { class: 'log-next', attrs: { secondary: true, title: 'Next match (Enter)' }, on: { click: () => this.step(1) } }, '↓');
    const run = debounce(() => this.setQuery(this.field.value ?? ''), 150);
    this.field.addEventListener('input', run);
    this.field.addEventListener('keydown', (e: KeyboardEvent) => {
      if (e.key !== 'Enter') return;
      e.preventDefault();
      // A query typed and Enter pressed at once: search first, then move.
      if ((this.field.value ?? '') !== this.query) this.setQuery(this.field.value ?? '');
      else this.step(e.shiftKey ? -1 : 1);
    });
    this.pre = h('div', { class: 'log mono', attrs: { role: 'log', tabindex: 0 } });
    this.el = h('div', { class: 'log-view' }, h('div', { class: 'toolbar' }, this.field, prev, next, this.count), this.pre);
  }

  /** Replaces the lines (a note, such as "no output yet", shows when there are none). */
  setLines(lines: Line[], note = ''): void {
    this.lines = lines;
    this.plain = lines.map(lineText);
    this.note = note;
    const keep = this.current;
    this.matches = findMatches(this.plain, this.query);
    this.current = this.matches.length ? Math.min(Math.max(keep, 0), this.matches.length - 1) : -1;
    this.draw(false);
  }

  /** Searches for a text (empty: no search). */
  setQuery(query: string): void {
    this.query = query;
    this.matches = findMatches(this.plain, query);
    this.current = this.matches.length ? 0 : -1;
    this.draw(true);
  }

  /** Moves to the next (1) or previous (-1) match, wrapping around. */
  step(by: 1 | -1): void {
    if (!this.matches.length) return;
    const old = this.current;
    this.current = (this.current + by + this.matches.length) % this.matches.length;
    for (const el of this.pre.querySelectorAll(`mark[data-match="${old}"]`)) el.classList.remove('current');
    for (const el of this.pre.querySelectorAll(`mark[data-match="${this.current}"]`)) el.classList.add('current');
    this.updateCount();
    this.reveal();
  }

  private updateCount(): void {
    this.count.textContent = this.query ? (this.matches.length ? `${this.current + 1} of ${this.matches.length}` : 'no match') : '';
  }

  private draw(reveal: boolean): void {
    const atBottom = this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight < 24;
    const first = Math.max(0, this.lines.length - MAX_DRAWN);
    const byLine = new Map<number, { start: number; end: number; current: boolean; index: number }[]>();
    this.matches.forEach((m, index) => {
      if (m.line < first) return;
      const list = byLine.get(m.line) ?? [];
      list.push({ start: m.start, end: m.end, current: index === this.current, index });
      byLine.set(m.line, list);
    });
    const rows: HTMLElement[] = [];
    if (first > 0) rows.push(h('div', { class: 'log-line log-note' }, `… ${first} earlier lines are not drawn (the search covers them)`));
    for (let i = first; i < this.lines.length; i++) {
      const ranges = byLine.get(i);
      const row = h('div', { class: 'log-line' });
      if (!ranges) row.append(...segmentNodes(this.lines[i]));
      else {
        const nodes = segmentNodes(markSegments(this.lines[i], ranges));
        // Each mark says which match it belongs to (a match may span styled pieces).
        let r = 0;
        let offset = 0;
        for (const node of nodes) {
          const len = node.textContent?.length ?? 0;
          if (node instanceof HTMLElement && node.tagName === 'MARK') {
            while (r < ranges.length && ranges[r].end <= offset) r++;
            if (ranges[r]) node.dataset.match = String(ranges[r].index);
          }
          offset += len;
        }
        row.append(...nodes);
      }
      if (this.lines[i].length === 0) row.append('\u200b');
      rows.push(row);
    }
    if (this.lines.length === 0 && this.note) rows.push(h('div', { class: 'log-line log-note' }, this.note));
    this.pre.replaceChildren(...rows);
    this.updateCount();
    if (reveal) this.reveal();
    else if (atBottom && !this.query) this.pre.scrollTop = this.pre.scrollHeight;
  }

  private reveal(): void {
    const el = this.pre.querySelector('mark.current');
    el?.scrollIntoView({ block: 'center' });
  }
}
