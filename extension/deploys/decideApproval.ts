import * as vscode from 'vscode';
import type { ApprovalInfo, DeploymentInfo } from '../../agent/protocol';
import type { CommandDeps } from '../commands/deps';
import { reportErrors, requireTrust } from '../commands/resolve';
import { deployArgOf, resolveApproval, type DeployCommandArg } from './deployArgs';
import { followDeployment } from './followDeployment';
import { releaseName } from './format';

/**
 * Approve or Reject: the approval from the node, `{ approvalId }` or a pick; the reason from
 * `{ reason }` or an InputBox (empty: none; dismissed: nothing is decided). Then follows the
 * deployment the decision lets through (or ends). Resolves with that deployment.
 */
export async function decideApproval(deps: CommandDeps, verdict: 'approve' | 'reject', arg: DeployCommandArg): Promise<DeploymentInfo | undefined> {
  const verb = verdict === 'approve' ? 'Approve' : 'Reject';
  if (!requireTrust(`${verdict} a deployment`)) return undefined;
  return reportErrors(deps.log, verb, async () => {
    const ref = await resolveApproval(deps, arg, verb);
    if (!ref) return undefined;
    const what = ref.approval ? releaseName(ref.approval.environment, ref.approval.release) : `approval #${ref.id}`;
    let reason = deployArgOf(arg).reason;
    if (reason === undefined) {
      reason = await vscode.window.showInputBox({
        title: `${verb} ${what}`,
        prompt: `Why? (optional: kept with the ${verdict === 'approve' ? 'approval' : 'rejection'}; Escape decides nothing)`,
        placeHolder: verdict === 'approve' ? 'e.g. checked on staging' : 'e.g. staging shows a regression',
        ignoreFocusOut: true,
      });
      if (reason === undefined) return undefined;
    }
    const http = await ref.session.requireApi();
    const decided = await http.request<ApprovalInfo>('POST', `/approvals/${ref.id}/${verdict}`, { reason: reason.trim() || undefined, via: 'editor' });
    const name = releaseName(decided.environment, decided.release);
    deps.log.info(`${ref.session.folder.name}: approval #${decided.id} (${name}) ${decided.status} by ${decided.decidedBy ?? 'you'}${decided.reason ? `: ${decided.reason}` : ''}`);
    const d = await http.request<DeploymentInfo>('GET', `/deployments/${decided.deploymentId}`);
    return followDeployment(deps, ref.session, d, verdict === 'approve' ? `deploying ${name} (approved)` : `rejecting ${name}`);
  });
}
