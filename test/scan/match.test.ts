import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cvss3BaseScore } from '../../agent/scan/cvss';
import { advisoryFor, severityOf, severityOfScore, type OsvEvent, type OsvRecord } from '../../agent/scan/osv';

const ADVISORIES = path.resolve(__dirname, '../../../test/fixtures/scan/advisories');
const record = (rel: string): OsvRecord => JSON.parse(fs.readFileSync(path.join(ADVISORIES, rel), 'utf8')) as OsvRecord;

/** A record for package "p" with one range of the given events. */
function ranged(events: OsvEvent[], type = 'SEMVER'): OsvRecord {
  return { id: 'GHSA-test-test-test', affected: [{ package: { ecosystem: 'npm', name: 'p' }, ranges: [{ type, events }] }] };
}

describe('OSV matching', () => {
  it('introduced is inclusive and fixed exclusive, over every span of a range', () => {
    const qs = record('github-reviewed/2018/GHSA-g6j3-4v5h-w3r8.json');
    const affected = (v: string) => advisoryFor(qs, 'qs', v) !== null;
    // Spans: [0, 6.2.4), [6.3.0, 6.3.3), [6.5.0, 6.5.3); the events are not in order in the record.
    assert.deepEqual(
      ['0.0.1', '6.2.3', '6.2.4', '6.2.9', '6.3.0', '6.3.2', '6.3.3', '6.4.0', '6.5.0', '6.5.2', '6.5.3', '7.0.0'].filter(affected),
      ['0.0.1', '6.2.3', '6.3.0', '6.3.2', '6.5.0', '6.5.2'],
    );
    assert.equal(advisoryFor(qs, 'qs', '6.3.1')?.fixedIn, '6.3.3');
    assert.equal(advisoryFor(qs, 'qs', '6.5.2')?.fixedIn, '6.5.3');
    assert.equal(advisoryFor(qs, 'qs', '1.0.0')?.fixedIn, '6.2.4');
  });

  it('last_affected is inclusive and leaves no fixed version', () => {
    const minimist = record('github-reviewed/2021/GHSA-34mm-494v-m3w5.json');
    assert.equal(advisoryFor(minimist, 'minimist', '1.2.5')?.fixedIn, null);
    assert.ok(advisoryFor(minimist, 'minimist', '0.0.8'));
    assert.equal(advisoryFor(minimist, 'minimist', '1.2.6'), null);
    assert.equal(advisoryFor(minimist, 'minimist', '1.2.6-beta.0'), null, 'a prerelease of 1.2.6 is above 1.2.5');
  });

  it('a span ended by last_affected gives no fix even when a later span has one', () => {
    const r = ranged([{ introduced: '1.0.0' }, { last_affected: '1.5.0' }, { introduced: '2.0.0' }, { fixed: '2.1.0' }]);
    assert.equal(advisoryFor(r, 'p', '1.2.0')?.fixedIn, null);
    assert.equal(advisoryFor(r, 'p', '2.0.5')?.fixedIn, '2.1.0');
    assert.equal(advisoryFor(r, 'p', '1.7.0'), null);
  });

  it('a range with no end affects every version from its introduction', () => {
    const r = ranged([{ introduced: '3.1.0' }]);
    assert.equal(advisoryFor(r, 'p', '3.0.9'), null);
    assert.equal(advisoryFor(r, 'p', '99.0.0')?.fixedIn, null);
  });

  it('orders prereleases as semver does: before their release, after the one below', () => {
    const widgets = record('github-reviewed/2021/GHSA-9w3w-wj39-3v6f.json');
    const affected = (v: string) => advisoryFor(widgets, '@acme/widgets', v) !== null;
    assert.deepEqual(
      ['1.9.9', '2.0.0-alpha.0', '2.0.0-alpha.1', '2.0.0-alpha.10', '2.0.0-beta.2', '2.0.0-beta.3', '2.0.0-rc.1', '2.0.0'].filter(affected),
      ['2.0.0-alpha.1', '2.0.0-alpha.10', '2.0.0-beta.2'],
    );
    // A prerelease of a fixed version is still before the fix; one of the introducing version is not yet affected.
    const r = ranged([{ introduced: '1.0.0' }, { fixed: '1.4.0' }]);
    assert.ok(advisoryFor(r, 'p', '1.4.0-rc.1'));
    assert.equal(advisoryFor(r, 'p', '1.0.0-beta.1'), null);
    assert.equal(advisoryFor(r, 'p', '1.4.0'), null);
  });

  it('matches a versions list exactly, and takes the fix from a range that also holds the version', () => {
    const express = record('github-reviewed/2018/GHSA-m6v5-wfv7-5ww8.json');
    assert.ok(advisoryFor(express, 'express', '4.16.0'));
    assert.equal(advisoryFor(express, 'express', '4.16.0')?.fixedIn, null);
    assert.equal(advisoryFor(express, 'express', '4.16.2'), null);
    const deep = record('github-reviewed/2018/GHSA-qm34-vwgg-hxqw.json');
    assert.equal(advisoryFor(deep, 'qs', '6.5.1')?.fixedIn, '6.5.2');
  });

  it('ignores other ecosystems, other packages, withdrawn records and GIT ranges', () => {
    assert.equal(advisoryFor(record('pypi/PYSEC-2099-1.json'), 'qs', '6.5.1'), null);
    assert.equal(advisoryFor(record('github-reviewed/2018/GHSA-g6j3-4v5h-w3r8.json'), 'express', '6.5.1'), null);
    assert.equal(advisoryFor(record('unreviewed/GHSA-qgpf-x45r-m7g6.json'), 'lodash', '4.17.21'), null);
    assert.equal(advisoryFor(ranged([{ introduced: '0' }], 'GIT'), 'p', '1.0.0'), null);
    assert.ok(advisoryFor(ranged([{ introduced: '0' }], 'ECOSYSTEM'), 'p', '1.0.0'));
  });

  it('skips a range whose events are not semver rather than guessing', () => {
    assert.equal(advisoryFor(ranged([{ introduced: 'abc123' }, { fixed: '2.0.0' }]), 'p', '1.0.0'), null);
  });
});

describe('severity', () => {
  it("takes the database's rating before a CVSS vector", () => {
    // The qs record rates HIGH and carries a 9.8 vector.
    assert.deepEqual(severityOf(record('github-reviewed/2018/GHSA-g6j3-4v5h-w3r8.json'), 'qs'), { severity: 'high', basis: 'advisory', score: null });
    assert.equal(severityOf({ id: 'x', database_specific: { severity: 'MEDIUM' } }, 'p').severity, 'moderate');
  });

  it('scores a record that has only a CVSS vector', () => {
    assert.deepEqual(severityOf(record('github-reviewed/2021/GHSA-34mm-494v-m3w5.json'), 'minimist'), { severity: 'high', basis: 'cvss', score: 7.3 });
    assert.deepEqual(severityOf(record('github-reviewed/2018/GHSA-qm34-vwgg-hxqw.json'), 'qs'), { severity: 'moderate', basis: 'cvss', score: 5.3 });
    // A vector on the affected package counts too.
    const r: OsvRecord = { id: 'x', affected: [{ package: { ecosystem: 'npm', name: 'p' }, severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H' }] }] };
    assert.deepEqual(severityOf(r, 'p'), { severity: 'critical', basis: 'cvss', score: 10 });
  });

  it('counts an unknown severity as moderate and says it is unknown', () => {
    assert.deepEqual(severityOf(record('unreviewed/GHSA-pwph-f979-4wfr.json'), 'left-pad'), { severity: 'moderate', basis: 'unknown', score: null });
    const v4: OsvRecord = { id: 'x', severity: [{ type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N' }] };
    assert.equal(severityOf(v4, 'p').basis, 'unknown');
  });

  it('computes CVSS 3.x base scores as the specification does', () => {
    // Reference scores from FIRST's calculator.
    const cases: [string, number][] = [
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10.0],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H', 7.5],
      ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8],
      ['CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N', 5.4],
      ['CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N', 3.1],
      ['CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N', 1.6],
      ['CVSS:3.1/AV:N/AC:L/PR:H/UI:R/S:C/C:L/I:L/A:N', 4.8],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N', 0],
      ['CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L', 5.3],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O', 9.8],
    ];
    for (const [vector, score] of cases) assert.equal(cvss3BaseScore(vector), score, vector);
  });

  it('rejects vectors that are not complete CVSS 3 vectors', () => {
    for (const v of ['CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H', 'CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', '7.5', '']) {
      assert.equal(cvss3BaseScore(v), null, v);
    }
  });

  it('maps scores to bands', () => {
    assert.deepEqual([0, 0.1, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10].map(severityOfScore), ['low', 'low', 'low', 'moderate', 'moderate', 'high', 'high', 'critical', 'critical']);
  });
});
