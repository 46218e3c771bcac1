import type * as vscode from 'vscode';
import type { DeployNotifications } from '../deploys/deployNotifications';
import type { EnvironmentStore } from '../deploys/environmentStore';
import type { ConfigDiagnostics } from '../diagnostics/configDiagnostics';
import type { StateDocuments } from '../gitops/stateDocuments';
import type { LogTerminals } from '../logs/logTerminals';
import type { SessionManager } from '../session/sessionManager';
import type { PipelineNode } from '../views/pipelines/nodes';
import type { PipelinesProvider } from '../views/pipelines/pipelinesProvider';

/** What commands work with; built once in activate() and passed to every registerX. */
export interface CommandDeps {
  sessions: SessionManager;
  pipelines: PipelinesProvider;
  pipelinesView: vscode.TreeView<PipelineNode>;
  logTerminals: LogTerminals;
  diagnostics: ConfigDiagnostics;
  log: vscode.LogOutputChannel;
  agentOutput: vscode.OutputChannel;
  deploys: EnvironmentStore;
  deployNotifications: DeployNotifications;
  /** The read-only documents of environments' desired and live state. */
  states: StateDocuments;
}
