/**
 * Building DOM nodes from data. Text always goes in as text nodes (never as HTML), attributes
 * through setAttribute, handlers through addEventListener: nothing a log line, a test name or a
 * commit message holds can become markup or script.
 */

export type Child = Node | string | number | null | undefined | false | readonly Child[];

/** What an element gets besides its children. */
export interface Props {
  class?: string;
  title?: string;
  /** Attributes; false, null and undefined leave one out, true sets it empty. */
  attrs?: Record<string, string | number | boolean | null | undefined>;
  data?: Record<string, string | number>;
  on?: { [K in keyof HTMLElementEventMap]?: (e: HTMLElementEventMap[K]) => void } & Record<string, ((e: Event) => void) | undefined>;
}

/** An HTML element with its properties and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K];
export function h(tag: string, props?: Props | null, ...children: Child[]): HTMLElement;
export function h(tag: string, props?: Props | null, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element with its attributes and children. */
export function svg(tag: string, props?: Props | null, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, props);
  append(el, children);
  return el;
}

function apply(el: Element, props: Props | null | undefined): void {
  if (!props) return;
  if (props.class) el.setAttribute('class', props.class);
  if (props.title) el.setAttribute('title', props.title);
  for (const [key, value] of Object.entries(props.attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const [key, value] of Object.entries(props.data ?? {})) el.setAttribute(`data-${key}`, String(value));
  for (const [event, handler] of Object.entries(props.on ?? {})) if (handler) el.addEventListener(event, handler as EventListener);
}

/** Appends children: nodes as they are, strings and numbers as text. */
export function append(parent: Node, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (typeof child === 'string' || typeof child === 'number') parent.appendChild(document.createTextNode(String(child)));
    else parent.appendChild(child as Node);
  }
}

/** Replaces an element's children. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** Calls fn at most once per animation frame, with the latest arguments. */
export function perFrame(fn: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

/** Calls fn once calls have stopped for `ms`. */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return (...args: A) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
