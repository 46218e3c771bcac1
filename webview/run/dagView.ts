/** The run's stages as a graph: SVG boxes in columns by depth of `needs`, coloured by status. */
import type { StageInfo } from '../../agent/protocol';
import { layoutDag } from '../shared/dag';
import { svg } from '../shared/dom';
import { durationBetween } from '../shared/time';
import { statusWord } from '../shared/status';

const NAME_CHARS = 22;

/** The graph; clicking a box (or Enter on it) selects its stage. */
export function renderDag(stages: readonly StageInfo[], selected: string | null, onSelect: (stage: string) => void): SVGElement {
  const layout = layoutDag(stages);
  const { width, height } = layout;
  const byName = new Map(stages.map((s) => [s.name, s]));
  const w = layout.box.width;
  const hgt = layout.box.height;
  const edges = layout.edges.map((e) => {
    const from = byName.get(e.from)!;
    return svg('path', { class: `edge edge-${from.status.replace(/_/g, '-')}`, attrs: { d: e.path } });
  });
  const nodes = layout.boxes.map((b) => {
    const s = byName.get(b.name)!;
    const took = durationBetween(s.startedAt, s.finishedAt);
    const label = `${s.name}: ${statusWord(s.status)}${s.message ? ` — ${s.message}` : ''}`;
    const g = svg(
      'g',
      {
        class: `node node-${s.status.replace(/_/g, '-')}${s.name === selected ? ' selected' : ''}`,
        attrs: { transform: `translate(${b.x},${b.y})`, tabindex: 0, role: 'button', 'aria-label': label, 'aria-pressed': s.name === selected ? 'true' : 'false' },
        data: { stage: s.name },
        on: {
          click: () => onSelect(s.name),
          keydown: (e: Event) => {
            const k = (e as KeyboardEvent).key;
            if (k === 'Enter' || k === ' ') {
              e.preventDefault();
              onSelect(s.name);
            }
          },
        },
      },
      svg('title', null, label),
      svg('rect', { class: 'box', attrs: { width: w, height: hgt, rx: 4 } }),
      svg('rect', { class: 'bar', attrs: { width: 4, height: hgt, rx: 2 } }),
      svg('text', { class: 'name', attrs: { x: 12, y: 15 } }, truncate(s.name)),
      svg('text', { class: 'sub', attrs: { x: 12, y: 29 } }, `${statusWord(s.status)}${took ? ` · ${took}` : ''}${s.attempt > 1 ? ` · attempt ${s.attempt}` : ''}`),
    );
    return g;
  });
  return svg('svg', { class: 'dag', attrs: { width, height, viewBox: `0 0 ${width} ${height}`, role: 'group', 'aria-label': 'Stages' } }, svg('g', { class: 'edges' }, edges), svg('g', { class: 'nodes' }, nodes));
}

function truncate(name: string): string {
  return name.length > NAME_CHARS ? `${name.slice(0, NAME_CHARS - 1)}…` : name;
}
