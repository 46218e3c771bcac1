/**
 * "What changed before" an incident: the commits between the last good release and the failing
 * one with their diff stats (a commit opens its patch), the config changes and the deployments
 * in that window.
 */
import type { ChangesBefore, CommitDiff, ReleasePoint } from '../../agent/protocol';
import { h, replace } from '../shared/dom';
import type { Transport } from '../shared/transport';
import { errorText } from '../shared/page';
import { statusClass, statusWord } from '../shared/status';
import { absoluteTime, relativeTime } from '../shared/time';

function time(iso: string): HTMLElement {
  return h('time', { attrs: { datetime: iso }, title: absoluteTime(iso) }, relativeTime(iso));
}

function point(p: ReleasePoint | null): string {
  if (!p) return 'unknown';
  const rel = p.environment && p.release !== null ? `${p.environment}@${p.release}` : p.environment ?? '';
  return [rel, p.commit ? p.commit.slice(0, 7) : null].filter(Boolean).join(' · ') || 'unknown';
}

/** Fills `el` with the changes before an incident, fetched from the agent. */
export async function showChanges(el: HTMLElement, transport: Transport, query: string): Promise<ChangesBefore | undefined> {
  replace(el, h('vscode-progress-ring', { attrs: { 'aria-label': 'Loading what changed' } }));
  let c: ChangesBefore;
  try {
    c = await transport.json<ChangesBefore>(`/api/incidents/changes?${query}`);
  } catch (e) {
    replace(el, h('p', { class: 'banner' }, errorText(e)));
    return undefined;
  }
  const diff = h('div', { class: 'diff' });
  replace(
    el,
    h('h2', null, 'What changed before'),
    h('p', { class: 'incident-title' }, c.incident.title),
    h('p', { class: 'muted' }, 'From ', time(c.window.from), ' to ', time(c.window.to), ` · last good: ${point(c.good)} · failing: ${point(c.bad)}`),
    h('h3', null, `Commits (${c.commits.length}${c.commitsTruncated ? '+' : ''})`),
    c.gitProblem ? h('p', { class: 'muted' }, c.gitProblem) : null,
    c.commits.length === 0 && !c.gitProblem ? h('p', { class: 'empty' }, 'No commit in the window.') : null,
    h(
      'ul',
      { class: 'commits' },
      c.commits.map((commit) =>
        h(
          'li',
          { class: 'commit', data: { sha: commit.sha } },
          h(
            'a',
            {
              class: 'commit-link',
              attrs: { href: '#', title: 'Show the patch' },
              on: {
                click: (e: Event) => {
                  e.preventDefault();
                  void showDiff(diff, transport, commit.sha);
                },
              },
            },
            h('span', { class: 'mono' }, commit.sha.slice(0, 7)),
            ' ',
            h('span', { class: 'commit-subject' }, commit.subject),
          ),
          h('span', { class: 'muted' }, ` — ${commit.author}, `, time(commit.committedAt), ' '),
          h('span', { class: 'added' }, `+${commit.added}`),
          ' ',
          h('span', { class: 'deleted' }, `−${commit.deleted}`),
          h(
            'ul',
            { class: 'files' },
            commit.files.map((f) => h('li', { class: 'mono' }, f.path, ' ', f.added === null ? h('span', { class: 'muted' }, 'binary') : [h('span', { class: 'added' }, `+${f.added}`), ' ', h('span', { class: 'deleted' }, `−${f.deleted}`)])),
          ),
        ),
      ),
    ),
    diff,
    h('h3', null, `Config changes (${c.configChanges.length})`),
    c.configChanges.length ? h('ul', null, c.configChanges.map((i) => h('li', null, time(i.time), ' ', i.title))) : h('p', { class: 'empty' }, 'None.'),
    h('h3', null, `Deployments (${c.deployments.length})`),
    c.deployments.length
      ? h(
          'ul',
          null,
          c.deployments.map((d) => h('li', null, `#${d.id} ${d.environment} ${d.fromRelease ?? '∅'} → ${d.toRelease} `, h('span', { class: statusClass(d.status) }, statusWord(d.status)), ' ', time(d.finishedAt ?? d.queuedAt), d.reason ? h('span', { class: 'muted' }, ` — ${d.reason}`) : null)),
        )
      : h('p', { class: 'empty' }, 'None.'),
  );
  return c;
}

/** A commit's patch, line by line, added and deleted lines coloured. */
async function showDiff(el: HTMLElement, transport: Transport, sha: string): Promise<void> {
  replace(el, h('vscode-progress-ring', { attrs: { 'aria-label': 'Loading the patch' } }));
  try {
    const d = await transport.json<CommitDiff>(`/api/commits/${encodeURIComponent(sha)}/diff`);
    const lines = d.patch.split('\n').map((line) => {
      const cls = line.startsWith('+++') || line.startsWith('---') || line.startsWith('diff ') ? 'diff-file' : line.startsWith('+') ? 'added' : line.startsWith('-') ? 'deleted' : line.startsWith('@@') ? 'diff-hunk' : undefined;
      return h('div', { class: cls }, line || '\u200b');
    });
    replace(el, h('h3', null, h('span', { class: 'mono' }, d.sha.slice(0, 7)), ' ', d.subject), h('div', { class: 'patch mono' }, lines), d.truncated ? h('p', { class: 'muted' }, 'The patch is cut at its size limit.') : null);
  } catch (e) {
    replace(el, h('p', { class: 'banner' }, errorText(e)));
  }
}
