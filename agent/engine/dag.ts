import type { StageConfig, StageTrigger } from '../protocol';

/**
 * The stages a run executes, in config order: the ones asked for (or, when none are, every
 * stage whose `when` includes the trigger), plus everything they need, transitively.
 */
export function selectStages(
  stages: readonly StageConfig[],
  trigger: StageTrigger,
  requested: readonly string[] | undefined,
): { ok: true; names: string[] } | { ok: false; error: string; fix: string } {
  const byName = new Map(stages.map((s) => [s.name, s]));
  let roots: string[];
  if (requested && requested.length > 0) {
    for (const name of requested) {
      if (!byName.has(name)) {
        const close = closest(name, [...byName.keys()]);
        return {
          ok: false,
          error: `no stage named "${name}"`,
          fix: close ? `did you mean "${close}"?` : `stages: ${[...byName.keys()].join(', ')}`,
        };
      }
    }
    roots = [...requested];
  } else {
    roots = stages.filter((s) => s.when.includes(trigger)).map((s) => s.name);
    if (roots.length === 0) {
      return {
        ok: false,
        error: `no stage runs on ${trigger}`,
        fix: `add "when: [${trigger}]" to a stage in conveyor.yml, or name the stages to run`,
      };
    }
  }
  const chosen = new Set<string>();
  const visit = (name: string) => {
    if (chosen.has(name)) return;
    chosen.add(name);
    for (const need of byName.get(name)?.needs ?? []) visit(need);
  };
  roots.forEach(visit);
  return { ok: true, names: stages.filter((s) => chosen.has(s.name)).map((s) => s.name) };
}

/** The closest candidate within a small edit distance, for did-you-mean hints. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** Fisher-Yates, for exposing missing `needs` edges in tests (CONVEYOR_SHUFFLE=1). */
export function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
