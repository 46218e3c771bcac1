import { performance } from 'node:perf_hooks';
import * as vscode from 'vscode';
import { registerApprove } from './commands/approveDeployment';
import { registerCancelRun } from './commands/cancelRun';
import { registerCreateStarterConfig } from './commands/createStarterConfig';
import type { CommandDeps } from './commands/deps';
import { registerDeployToEnvironment } from './commands/deployToEnvironment';
import { registerOpenEnvironment } from './commands/openEnvironment';
import { registerOpenMetricsDashboard } from './commands/openMetricsDashboard';
import { registerOpenRunDashboard } from './commands/openRunDashboard';
import { registerOpenTimeline } from './commands/openTimeline';
import { registerDestroyPreview } from './commands/destroyPreview';
import { registerOpenCommit } from './commands/openCommit';
import { registerOpenDesiredState } from './commands/openDesiredState';
import { registerPauseReconcile } from './commands/pauseReconcile';
import { registerPreviewSync } from './commands/previewSync';
import { registerPromote } from './commands/promoteEnvironment';
import { registerRefresh } from './commands/refresh';
import { registerReject } from './commands/rejectDeployment';
import { registerRerunRun } from './commands/rerunRun';
import { registerRestartAgent } from './commands/restartAgent';
import { registerResumeReconcile } from './commands/resumeReconcile';
import { registerRevealRun } from './commands/revealRun';
import { registerRollback } from './commands/rollbackEnvironment';
import { registerRollbackToRelease } from './commands/rollbackToRelease';
import { registerRunPipeline } from './commands/runPipeline';
import { registerRunStage } from './commands/runStage';
import { registerShowAgentLog } from './commands/showAgentLog';
import { registerShowDrift } from './commands/showDrift';
import { registerShowLogs } from './commands/showLogs';
import { registerStartAgent } from './commands/startAgent';
import { registerStopAgent } from './commands/stopAgent';
import { registerSyncEnvironment } from './commands/syncEnvironment';
import { registerValidateConfig } from './commands/validateConfig';
import { COMMIT_SCHEME, CommitDocumentProvider } from './commit';
import { ENVIRONMENTS_VIEW, PIPELINES_VIEW } from './constants';
import { DeployNotifications } from './deploys/deployNotifications';
import { EnvironmentStore } from './deploys/environmentStore';
import { Dashboards } from './dashboards/dashboards';
import { ConfigDiagnostics } from './diagnostics/configDiagnostics';
import { AlertNotifications } from './alerts/alertNotifications';
import { DriftNotifications } from './gitops/driftNotifications';
import { STATE_SCHEME, StateDocuments } from './gitops/stateDocuments';
import { LogTerminals } from './logs/logTerminals';
import { SessionManager } from './session/sessionManager';
import { StatusBarController } from './statusBar';
import { registerTesting, type ConveyorTesting } from './testing/testing';
import { EnvironmentsProvider } from './views/environments/environmentsProvider';
import type { PipelineNode } from './views/pipelines/nodes';
import { PipelinesProvider } from './views/pipelines/pipelinesProvider';

/** What activate() returns: the extension's parts, for its integration tests. */
export interface ConveyorTestApi {
  /** How long activate() took, in milliseconds. */
  activationMs: number;
  sessions: SessionManager;
  pipelines: PipelinesProvider;
  pipelinesView: vscode.TreeView<PipelineNode>;
  environments: EnvironmentsProvider;
  /** The environments' statuses, from the agents' deploy events. */
  deploys: EnvironmentStore;
  deployNotifications: DeployNotifications;
  /** Drift the reconciler reported, told once per event. */
  driftNotifications: DriftNotifications;
  alertNotifications: AlertNotifications;
  /** The read-only documents of the desired and live state (conveyor-state: URIs). */
  states: StateDocuments;
  diagnostics: ConfigDiagnostics;
  logTerminals: LogTerminals;
  statusBar: StatusBarController;
  testing: ConveyorTesting;
}

export interface ConveyorExports {
  testApi: ConveyorTestApi;
}

/**
 * Wires the parts together and returns at once: the agent is found or started in the
 * background (SessionManager.start), so activation does no I/O of its own.
 */
export function activate(context: vscode.ExtensionContext): ConveyorExports {
  const started = performance.now();
  const log = vscode.window.createOutputChannel('Conveyor', { log: true });
  const agentOutput = vscode.window.createOutputChannel('Conveyor Agent');
  context.subscriptions.push(log, agentOutput);

  const sessions = new SessionManager({ log, agentOutput, bundledCli: context.asAbsolutePath('dist/cli.js') });
  const pipelines = new PipelinesProvider(sessions);
  const pipelinesView = vscode.window.createTreeView<PipelineNode>(PIPELINES_VIEW, { treeDataProvider: pipelines, showCollapseAll: true });
  const deploys = new EnvironmentStore(sessions, log);
  const deployNotifications = new DeployNotifications(sessions, deploys, log);
  const driftNotifications = new DriftNotifications(sessions, deploys, log);
  const alertNotifications = new AlertNotifications(sessions, deploys, log);
  const states = new StateDocuments(sessions);
  const environments = new EnvironmentsProvider(sessions, deploys);
  const environmentsView = vscode.window.createTreeView(ENVIRONMENTS_VIEW, { treeDataProvider: environments });
  const diagnostics = new ConfigDiagnostics(sessions, log);
  const logTerminals = new LogTerminals(log);
  const statusBar = new StatusBarController(sessions);
  // Disposed with the extension: the sessions stop the agents they started.
  context.subscriptions.push(sessions, pipelines, pipelinesView, deploys, deployNotifications, driftNotifications, alertNotifications, states, environments, environmentsView, diagnostics, logTerminals, statusBar);
  context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(COMMIT_SCHEME, new CommitDocumentProvider()));
  context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(STATE_SCHEME, states));

  const deps: CommandDeps = { sessions, pipelines, pipelinesView, logTerminals, diagnostics, log, agentOutput, deploys, deployNotifications, states };
  registerRunPipeline(context, deps);
  registerRunStage(context, deps);
  registerCancelRun(context, deps);
  registerRerunRun(context, deps);
  registerShowLogs(context, deps);
  registerValidateConfig(context, deps);
  registerStartAgent(context, deps);
  registerStopAgent(context, deps);
  registerRestartAgent(context, deps);
  registerShowAgentLog(context, deps);
  registerCreateStarterConfig(context, deps);
  registerOpenCommit(context, deps);
  registerRefresh(context, deps);
  registerRevealRun(context, deps);
  registerDeployToEnvironment(context, deps);
  registerPromote(context, deps);
  registerApprove(context, deps);
  registerReject(context, deps);
  registerRollback(context, deps);
  registerRollbackToRelease(context, deps);
  registerOpenEnvironment(context, deps);
  registerDestroyPreview(context, deps);
  registerShowDrift(context, deps);
  registerSyncEnvironment(context, deps);
  registerPreviewSync(context, deps);
  registerOpenDesiredState(context, deps);
  registerPauseReconcile(context, deps);
  registerResumeReconcile(context, deps);
  const dashboards = new Dashboards(context.extensionUri, sessions, log);
  context.subscriptions.push(dashboards);
  registerOpenRunDashboard(context, deps, dashboards);
  registerOpenMetricsDashboard(context, deps, dashboards);
  registerOpenTimeline(context, deps, dashboards);
  const testing = registerTesting(context, { sessions, log });

  sessions.start();
  const activationMs = performance.now() - started;
  log.info(`activate() took ${activationMs.toFixed(1)} ms`);
  return { testApi: { activationMs, sessions, pipelines, pipelinesView, environments, deploys, deployNotifications, driftNotifications, alertNotifications, states, diagnostics, logTerminals, statusBar, testing } };
}

export function deactivate(): void {
  // Everything is in context.subscriptions.
}
