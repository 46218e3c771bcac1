/** One benchmark's printed lines and its figures (written to test-output/bench.json). */
export interface BenchResult {
  name: string;
  lines: string[];
  figures: Record<string, number>;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
