import * as assert from 'node:assert/strict';
import { depths, layoutDag } from '../../webview/shared/dag';
import type { Segment } from '../../webview/shared/ansi';
import { findMatches, markSegments } from '../../webview/shared/search';
import { escapeHtml, pageShell } from '../../webview/shared/shell';
import { formatDuration, relativeTime } from '../../webview/shared/time';

describe('stage graph layout', () => {
  const stages = [
    { name: 'build', needs: [] },
    { name: 'lint', needs: [] },
    { name: 'test', needs: ['build', 'lint'] },
    { name: 'package', needs: ['build'] },
    { name: 'deploy', needs: ['test', 'package', 'gone'] },
  ];

  it('puts each stage one column right of its deepest need, ignoring needs outside the run', () => {
    assert.deepEqual(Object.fromEntries(depths(stages)), { build: 0, lint: 0, test: 1, package: 1, deploy: 2 });
    const layout = layoutDag(stages);
    const box = (n: string) => layout.boxes.find((b) => b.name === n)!;
    assert.deepEqual([box('build').column, box('test').column, box('deploy').column], [0, 1, 2]);
    assert.ok(box('test').x > box('build').x && box('deploy').x > box('test').x);
    assert.deepEqual(
      layout.edges.map((e) => `${e.from}>${e.to}`),
      ['build>test', 'lint>test', 'build>package', 'test>deploy', 'package>deploy'],
    );
    for (const b of layout.boxes) assert.ok(b.x + layout.box.width <= layout.width && b.y + layout.box.height <= layout.height, `${b.name} inside`);
  });

  it('survives a cycle (the config refuses them) and an empty run', () => {
    const d = depths([
      { name: 'a', needs: ['b'] },
      { name: 'b', needs: ['a'] },
    ]);
    assert.equal(d.size, 2);
    assert.deepEqual(layoutDag([]).boxes, []);
  });
});

describe('log search', () => {
  it('finds every match, case-insensitively, in line order', () => {
    assert.deepEqual(findMatches(['Error one', 'no', 'error error'], 'ERROR'), [
      { line: 0, start: 0, end: 5 },
      { line: 2, start: 0, end: 5 },
      { line: 2, start: 6, end: 11 },
    ]);
    assert.deepEqual(findMatches(['abc'], ''), []);
    assert.equal(findMatches(['aaaa'], 'a', 3).length, 3);
  });

  it('cuts styled segments at the matches and marks the current one', () => {
    const segs: Segment[] = [
      { text: 'foo ba', classes: 'ansi-fg-1' },
      { text: 'r baz', classes: '' },
    ];
    const marked = markSegments(segs, [
      { start: 4, end: 7 },
      { start: 8, end: 11, current: true },
    ]);
    assert.deepEqual(
      marked.map((m) => [m.text, m.classes, m.mark ?? '']),
      [
        ['foo ', 'ansi-fg-1', ''],
        ['ba', 'ansi-fg-1', 'match'],
        ['r', '', 'match'],
        [' ', '', ''],
        ['baz', '', 'current'],
      ],
    );
  });
});

describe('page shell and times', () => {
  it('escapes every value it writes into the page', () => {
    const html = pageShell({ page: 'run', host: 'browser', nonce: 'n"x', csp: "default-src 'none'", scriptUri: 'run.js?a=1&b=<2>', styleUri: 'run.css', data: { params: '{"run":"<img>"}', 'bad key': 'x' } });
    assert.match(html, /nonce="n&quot;x"/);
    assert.match(html, /src="run.js\?a=1&amp;b=&lt;2&gt;"/);
    assert.match(html, /data-params="\{&quot;run&quot;:&quot;&lt;img&gt;&quot;\}"/);
    assert.doesNotMatch(html, /bad key/);
    assert.equal(escapeHtml(`<a href='x'>&</a>`), '&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;');
  });

  it('writes times relative and durations short', () => {
    const now = Date.parse('2026-05-01T12:00:00Z');
    assert.equal(relativeTime('2026-05-01T11:57:00Z', now), '3 min ago');
    assert.equal(relativeTime('2026-05-01T12:00:03Z', now), 'just now');
    assert.equal(relativeTime('2026-04-29T12:00:00Z', now), '2 days ago');
    assert.equal(relativeTime('2026-05-01T12:10:00Z', now), 'in 10 min');
    assert.deepEqual([850, 3200, 130_000, 3_900_000, 2 * 86_400_000 + 3 * 3_600_000].map(formatDuration), ['850 ms', '3.2 s', '2m 10s', '1h 5m', '2d 3h']);
  });
});
