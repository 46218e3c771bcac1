import { isModuleFile, Resolver } from './resolve';

/**
 * The import graph of a workspace's JS and TS files, both ways: what each file imports, and who
 * imports each file. Pure and synchronous: the analyzer reads the files and hands over their
 * specifiers; the graph resolves them and keeps the edges.
 *
 * Nodes are workspace files (relative, forward slashes): the sources, and whatever they import
 * that is in the workspace (a JSON file, a stylesheet). Packages and built-ins are not nodes.
 */
export class ImportGraph {
  /** Module files of the workspace (sources, JSON, addons): what a specifier may resolve to. */
  private readonly files = new Set<string>();
  /** Parsed sources: the specifiers each one imports, as written. */
  private readonly specifiers = new Map<string, readonly string[]>();
  /** Resolved imports of each source. */
  private readonly deps = new Map<string, readonly string[]>();
  /** The reverse: file to the sources that import it. */
  private readonly importers = new Map<string, Set<string>>();
  private readonly resolver: Resolver;

  constructor(readonly root: string) {
    this.resolver = new Resolver(root, this.files);
  }

  /** How many sources were parsed. */
  get sourceCount(): number {
    return this.specifiers.size;
  }

  /** Records a module file (a source, or JSON); false when it was known. */
  addFile(rel: string): boolean {
    if (!isModuleFile(rel) || this.files.has(rel)) return false;
    this.files.add(rel);
    return true;
  }

  /** Sets a source's specifiers; resolve them with `resolve` or `resolveAll`. */
  setSource(rel: string, specifiers: readonly string[]): void {
    this.addFile(rel);
    this.specifiers.set(rel, [...new Set(specifiers)]);
  }

  /** Forgets a file: as a source and as a module. Its importers keep their (now dangling) edges until resolved again. */
  removeFile(rel: string): boolean {
    const known = this.files.delete(rel) || this.specifiers.has(rel) || this.importers.has(rel);
    this.specifiers.delete(rel);
    this.setDeps(rel, []);
    this.deps.delete(rel);
    return known;
  }

  isSource(rel: string): boolean {
    return this.specifiers.has(rel);
  }

  /** A file the graph can place: a parsed source, or a file some source imports. */
  has(rel: string): boolean {
    return this.specifiers.has(rel) || (this.importers.get(rel)?.size ?? 0) > 0;
  }

  importsOf(rel: string): readonly string[] {
    return this.deps.get(rel) ?? [];
  }

  importersOf(rel: string): readonly string[] {
    return [...(this.importers.get(rel) ?? [])].sort();
  }

  /** Resolves one source's specifiers; true when its edges changed. */
  resolve(rel: string): boolean {
    const specs = this.specifiers.get(rel);
    if (!specs) return false;
    const next: string[] = [];
    for (const s of specs) {
      const target = this.resolver.resolve(rel, s);
      if (target !== undefined && target !== rel && !next.includes(target)) next.push(target);
    }
    return this.setDeps(rel, next);
  }

  /**
   * Resolves every source again, after the set of files or a resolution setting (tsconfig)
   * changed: an added `x.ts` may now be what `./x` names, a deleted one no longer. Returns the
   * sources whose edges changed.
   */
  resolveAll(): Set<string> {
    this.resolver.reset();
    const changed = new Set<string>();
    for (const rel of this.specifiers.keys()) if (this.resolve(rel)) changed.add(rel);
    return changed;
  }

  /**
   * The files that import any of `roots`, directly or not, and the roots themselves. Each file
   * is visited once, so cycles end.
   */
  dependents(roots: Iterable<string>): Set<string> {
    const seen = new Set<string>();
    const queue: string[] = [];
    for (const r of roots) {
      if (!seen.has(r)) {
        seen.add(r);
        queue.push(r);
      }
    }
    for (let i = 0; i < queue.length; i++) {
      const importers = this.importers.get(queue[i]);
      if (!importers) continue;
      for (const imp of importers) {
        if (!seen.has(imp)) {
          seen.add(imp);
          queue.push(imp);
        }
      }
    }
    return seen;
  }

  private setDeps(rel: string, next: readonly string[]): boolean {
    const prev = this.deps.get(rel) ?? [];
    if (prev.length === next.length && prev.every((d, i) => d === next[i])) return false;
    for (const d of prev) {
      const set = this.importers.get(d);
      if (!set) continue;
      set.delete(rel);
      if (set.size === 0) this.importers.delete(d);
    }
    for (const d of next) {
      let set = this.importers.get(d);
      if (!set) this.importers.set(d, (set = new Set()));
      set.add(rel);
    }
    if (next.length > 0) this.deps.set(rel, next);
    else this.deps.delete(rel);
    return true;
  }
}
