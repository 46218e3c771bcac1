/**
 * CVSS 3.0 and 3.1 base scores from a vector string, after the FIRST specification
 * (https://www.first.org/cvss/v3.1/specification-document, section 7).
 */

const WEIGHTS: Record<string, Record<string, number>> = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  C: { H: 0.56, L: 0.22, N: 0 },
  I: { H: 0.56, L: 0.22, N: 0 },
  A: { H: 0.56, L: 0.22, N: 0 },
};
/** Privileges Required weighs more when the scope changes. */
const PRIVILEGES: Record<string, { unchanged: number; changed: number }> = {
  N: { unchanged: 0.85, changed: 0.85 },
  L: { unchanged: 0.62, changed: 0.68 },
  H: { unchanged: 0.27, changed: 0.5 },
};

/**
 * The base score (0.0 to 10.0) of a `CVSS:3.x/AV:../AC:../PR:../UI:../S:../C:../I:../A:..`
 * vector; null when it is not a complete CVSS 3 vector. Temporal and environmental metrics in
 * the vector are ignored: advisories rate the base.
 */
export function cvss3BaseScore(vector: string): number | null {
  const parts = vector.trim().split('/');
  const version = /^CVSS:3\.([01])$/.exec(parts[0] ?? '');
  if (!version) return null;
  const m = new Map<string, string>();
  for (const part of parts.slice(1)) {
    const [key, value] = part.split(':');
    if (!key || value === undefined) return null;
    m.set(key, value);
  }
  const scope = m.get('S');
  const pr = PRIVILEGES[m.get('PR') ?? ''];
  if ((scope !== 'U' && scope !== 'C') || !pr) return null;
  const w: Record<string, number> = {};
  for (const [metric, table] of Object.entries(WEIGHTS)) {
    const weight = table[m.get(metric) ?? ''];
    if (weight === undefined) return null;
    w[metric] = weight;
  }
  const changed = scope === 'C';
  const iss = 1 - (1 - w.C) * (1 - w.I) * (1 - w.A);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15) : 6.42 * iss;
  const exploitability = 8.22 * w.AV * w.AC * (changed ? pr.changed : pr.unchanged) * w.UI;
  if (impact <= 0) return 0;
  const roundUp = version[1] === '1' ? roundUp31 : roundUp30;
  return roundUp(Math.min((changed ? 1.08 : 1) * (impact + exploitability), 10));
}

/** CVSS 3.1's Roundup: the smallest one-decimal number at or above x, free of float noise. */
function roundUp31(x: number): number {
  const n = Math.round(x * 100000);
  return n % 10000 === 0 ? n / 100000 : (Math.floor(n / 10000) + 1) / 10;
}

/** CVSS 3.0's Roundup, as that version defines it. */
function roundUp30(x: number): number {
  return Math.ceil(x * 10) / 10;
}
