/**
 * The layout of a run's stage graph: one column per depth of `needs` (a stage with no needs in
 * the run is at depth 0, any other one column right of its deepest need), boxes top to bottom in
 * each column, edges as curves from a need's right side to the stage's left side. Needs that
 * name no stage of the run are left out. Pure: no DOM.
 */

export interface DagInput {
  name: string;
  needs: readonly string[];
}

/** A stage's box: its column (depth) and row, and its top-left corner. */
export interface DagBox {
  name: string;
  column: number;
  row: number;
  x: number;
  y: number;
}

/** A need: from the stage needed to the stage that needs it. */
export interface DagEdge {
  from: string;
  to: string;
  /** An SVG path: a cubic curve. */
  path: string;
}

/** The placed graph and the size it takes. */
export interface DagLayout {
  boxes: DagBox[];
  edges: DagEdge[];
  width: number;
  height: number;
  box: BoxSize;
}

/** The size of a box and the gaps between boxes, in pixels. */
export interface BoxSize {
  width: number;
  height: number;
  gapX: number;
  gapY: number;
  pad: number;
}

/** The boxes the Run page draws. */
export const DEFAULT_BOX: BoxSize = { width: 168, height: 36, gapX: 52, gapY: 12, pad: 6 };

/** Each stage's depth: the longest chain of needs below it (cycles, which the config refuses, count as depth 0). */
export function depths(stages: readonly DagInput[]): Map<string, number> {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (name: string): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (visiting.has(name)) return 0;
    visiting.add(name);
    let d = 0;
    for (const need of byName.get(name)?.needs ?? []) if (byName.has(need)) d = Math.max(d, visit(need) + 1);
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const s of stages) visit(s.name);
  return depth;
}

/**
 * Places the stages. Within a column the stages keep their order, except that each is moved
 * toward the average row of its needs (one barycentre pass), which keeps most edges short.
 */
export function layoutDag(stages: readonly DagInput[], size: BoxSize = DEFAULT_BOX): DagLayout {
  const depth = depths(stages);
  const columns: DagInput[][] = [];
  for (const s of stages) (columns[depth.get(s.name)!] ??= []).push(s);
  const row = new Map<string, number>();
  columns.forEach((column, c) => {
    const weight = (s: DagInput, i: number) => {
      const rows = s.needs.map((n) => row.get(n)).filter((r): r is number => r !== undefined);
      return c === 0 || rows.length === 0 ? i : rows.reduce((a, b) => a + b, 0) / rows.length + i * 1e-6;
    };
    const ordered = column.map((s, i) => ({ s, w: weight(s, i) })).sort((a, b) => a.w - b.w);
    columns[c] = ordered.map((o) => o.s);
    columns[c].forEach((s, r) => row.set(s.name, r));
  });
  const boxes: DagBox[] = [];
  const at = new Map<string, DagBox>();
  columns.forEach((column, c) =>
    column.forEach((s, r) => {
      const box = { name: s.name, column: c, row: r, x: size.pad + c * (size.width + size.gapX), y: size.pad + r * (size.height + size.gapY) };
      boxes.push(box);
      at.set(s.name, box);
    }),
  );
  const edges: DagEdge[] = [];
  for (const s of stages) {
    const to = at.get(s.name)!;
    for (const need of s.needs) {
      const from = at.get(need);
      if (!from) continue;
      const x1 = from.x + size.width;
      const y1 = from.y + size.height / 2;
      const x2 = to.x;
      const y2 = to.y + size.height / 2;
      const dx = Math.max(16, (x2 - x1) / 2);
      edges.push({ from: need, to: s.name, path: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}` });
    }
  }
  const rows = Math.max(0, ...columns.map((c) => c.length));
  return {
    boxes,
    edges,
    width: size.pad * 2 + columns.length * size.width + Math.max(0, columns.length - 1) * size.gapX,
    height: size.pad * 2 + rows * size.height + Math.max(0, rows - 1) * size.gapY,
    box: size,
  };
}
