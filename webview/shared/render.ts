/** DOM for styled log text: each segment a span with its classes (and CSSOM colours for 256/true colours). */
import type { Segment } from './ansi';
import type { MarkedSegment } from './search';

/** The spans of one line; marked pieces are <mark> elements. */
export function segmentNodes(segments: readonly (Segment | MarkedSegment)[]): Node[] {
  return segments.map((seg) => {
    const mark = (seg as MarkedSegment).mark;
    if (!seg.classes && !seg.fg && !seg.bg && !mark) return document.createTextNode(seg.text);
    const el = document.createElement(mark ? 'mark' : 'span');
    const classes = [seg.classes, mark === 'current' ? 'match current' : mark ? 'match' : ''].filter(Boolean).join(' ');
    if (classes) el.className = classes;
    // Property assignment (CSSOM) is allowed by the pages' CSP; a style attribute would not be.
    if (seg.fg) el.style.color = seg.fg;
    if (seg.bg) el.style.backgroundColor = seg.bg;
    el.textContent = seg.text;
    return el;
  });
}
