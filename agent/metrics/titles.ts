/**
 * One line per event, for the timeline: what happened, to what, and how it ended.
 */
import type { AgentEvent, SequencedEvent, TimelineItem } from '../protocol';
import { environmentOf } from '../store/store';
import { formatDuration } from './stats';

type Level = TimelineItem['level'];

/** A one-line title and a level for an event; event types this module does not know get a generic line. */
export function describeEvent(e: SequencedEvent): { title: string; level: Level } {
  switch (e.type) {
    case 'agent.started':
      return line(`Agent ${e.version} started (pid ${e.pid})${e.interruptedRuns.length ? `; interrupted ${e.interruptedRuns.map((id) => `#${id}`).join(', ')}` : ''}`, e.interruptedRuns.length ? 'warning' : 'info');
    case 'config.changed':
      return e.state.valid
        ? line(`${base(e.state.file)} changed: valid`, 'info')
        : line(`${base(e.state.file)} changed: ${count(e.state.diagnostics.length, 'problem')}${e.state.diagnostics[0] ? `, first: ${firstLine(e.state.diagnostics[0].message)}` : ''}`, 'warning');
    case 'run.queued':
      return line(`Run #${e.run.id} queued (${e.run.trigger})${e.run.title ? `: ${firstLine(e.run.title)}` : ''}${e.run.commit ? ` @ ${e.run.commit.slice(0, 7)}` : ''}${e.run.branch ? ` on ${e.run.branch}` : ''}`, 'info');
    case 'run.started':
      return line(`Run #${e.run.id} started`, 'info');
    case 'run.finished': {
      const r = e.run;
      const took = r.startedAt && r.finishedAt ? ` in ${formatDuration(Date.parse(r.finishedAt) - Date.parse(r.startedAt))}` : '';
      return line(`Run #${r.id} ${r.status}${took}${r.reason ? `: ${firstLine(r.reason)}` : ''}`, statusLevel(r.status));
    }
    case 'stage.changed': {
      const s = e.stage;
      const attempt = s.attempt > 1 ? ` (attempt ${s.attempt})` : '';
      return line(`#${s.runId} ${s.name} ${s.status.replace('_', ' ')}${attempt}${s.message ? `: ${firstLine(s.message)}` : ''}`, statusLevel(s.status));
    }
    case 'step.changed': {
      const s = e.step;
      const code = s.exitCode !== null && s.exitCode !== 0 ? ` (exit ${s.exitCode})` : '';
      return line(`#${s.runId} ${s.stage} step ${s.index + 1} ${s.status.replace('_', ' ')}${code}: ${firstLine(s.command)}`, statusLevel(s.status));
    }
    case 'log':
      return line(`#${e.runId} ${e.stage}: ${firstLine(e.text)}`, 'info');
    case 'tests.reported': {
      // A big report comes in several events: each says which of the report's results it holds.
      const part = e.total !== undefined ? ` (results ${(e.first ?? 0) + 1}–${(e.first ?? 0) + e.results.length} of ${e.total})` : '';
      return line(`#${e.runId} ${e.stage}: ${e.passed} passed, ${e.failed} failed, ${e.skipped} skipped${part}`, e.failed ? 'error' : 'success');
    }
    case 'report.unreadable':
      return line(`#${e.runId} ${e.stage}: report ${e.path} unreadable: ${firstLine(e.reason)}`, 'warning');
    case 'artifact.recorded':
      return line(`#${e.artifact.runId} ${e.artifact.stage} recorded ${e.artifact.path} (${e.artifact.digest.slice(0, 19)})`, 'info');
    case 'release.created': {
      const r = e.release;
      return line(`Release ${r.environment}@${r.number} created${r.runId !== null ? ` from run #${r.runId}` : ''}${r.commit ? ` @ ${r.commit.slice(0, 7)}` : ''} by ${r.createdBy}`, 'info');
    }
    case 'deployment.changed': {
      const d = e.deployment;
      const move = `${d.fromRelease ?? '∅'} → ${d.toRelease}`;
      const what = d.trigger === 'rollback' ? 'Rollback' : 'Deploy';
      return line(`${what} #${d.id} ${d.environment} ${move} ${d.status.replace('_', ' ')}${d.reason ? `: ${firstLine(d.reason)}` : ''}`, deploymentLevel(d.status));
    }
    case 'deployment.progress':
      return line(`Deploy #${e.deploymentId} ${e.environment}: ${firstLine(e.message)}`, 'info');
    case 'approval.changed': {
      const a = e.approval;
      const who = a.decidedBy ? ` by ${a.decidedBy}` : '';
      return line(`Approval #${a.id} for ${a.environment}@${a.release} ${a.status}${who}${a.reason ? `: ${firstLine(a.reason)}` : ''}`, a.status === 'rejected' ? 'warning' : a.status === 'approved' ? 'success' : 'info');
    }
    case 'environment.health':
      return line(`${e.environment} is ${e.health}${e.release !== null ? ` (release ${e.release})` : ''}`, e.health === 'Healthy' ? 'success' : e.health === 'Progressing' ? 'info' : 'error');
    case 'preview.created':
      return line(`Preview ${e.preview.name} created for ${e.preview.branch} from ${e.preview.template}`, 'info');
    case 'preview.destroyed':
      return line(`Preview ${e.name} destroyed: ${firstLine(e.reason)}`, 'info');
    default:
      return generic(e as unknown as Record<string, unknown>);
  }
}

/**
 * Events added after this module: their type in words, the environment, and the first of the
 * usual one-line fields they carry (message, reason, action, or the title of one of their objects).
 */
function generic(e: Record<string, unknown>): { title: string; level: Level } {
  const type = String(e.type);
  const words = type.replace(/[._]/g, ' ');
  const parts = [words.charAt(0).toUpperCase() + words.slice(1)];
  const environment = environmentOf(e as unknown as AgentEvent);
  if (environment) parts.push(`in ${environment}`);
  if (typeof e.runId === 'number') parts.push(`#${e.runId}${typeof e.stage === 'string' ? ` ${e.stage}` : ''}`);
  if (typeof e.commit === 'string') parts.push(`@ ${e.commit.slice(0, 7)}`);
  const objects = Object.values(e).filter((v): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v));
  const detail = [e.message, e.reason, e.action, ...objects.flatMap((o) => [o.title, o.message])].find((v): v is string => typeof v === 'string' && v.length > 0);
  const items = Array.isArray(e.items) ? `${count(e.items.length, 'item')}` : null;
  const tail = [items, detail ? firstLine(detail) : null].filter(Boolean).join(', ');
  return line(`${parts.join(' ')}${tail ? `: ${tail}` : ''}`, e.ok !== true && /fail|error|drift|alert/.test(type) ? 'warning' : 'info');
}

function line(title: string, level: Level): { title: string; level: Level } {
  return { title: title.length > 200 ? `${title.slice(0, 199)}…` : title, level };
}

function firstLine(text: string): string {
  const first = text.trim().split('\n')[0].trim();
  return first.length > 120 ? `${first.slice(0, 119)}…` : first;
}

function base(file: string): string {
  return file.split(/[\\/]/).pop() || file;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function statusLevel(status: string): Level {
  if (status === 'succeeded') return 'success';
  if (status === 'failed' || status === 'timed_out') return 'error';
  if (status === 'cancelled' || status === 'interrupted' || status === 'skipped') return 'warning';
  return 'info';
}

function deploymentLevel(status: string): Level {
  if (status === 'succeeded') return 'success';
  if (status === 'failed' || status === 'rolled_back') return 'error';
  if (status === 'rejected' || status === 'cancelled') return 'warning';
  return 'info';
}
