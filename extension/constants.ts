/** Identifiers shared by the manifest (package.json) and the code. */

export const EXTENSION_ID = 'conveyor.conveyor';

export const VIEW_CONTAINER = 'conveyor';
export const PIPELINES_VIEW = 'conveyor.pipelines';
export const ENVIRONMENTS_VIEW = 'conveyor.environments';

export const CONFIG_FILE_NAMES = ['conveyor.yml', 'conveyor.yaml'] as const;

export const Commands = {
  runPipeline: 'conveyor.runPipeline',
  runStage: 'conveyor.runStage',
  cancelRun: 'conveyor.cancelRun',
  rerunRun: 'conveyor.rerunRun',
  showLogs: 'conveyor.showLogs',
  validateConfig: 'conveyor.validateConfig',
  startAgent: 'conveyor.startAgent',
  stopAgent: 'conveyor.stopAgent',
  restartAgent: 'conveyor.restartAgent',
  showAgentLog: 'conveyor.showAgentLog',
  createStarterConfig: 'conveyor.createStarterConfig',
  openCommit: 'conveyor.openCommit',
  refresh: 'conveyor.refresh',
  /** Status bar click: reveal a run in the Pipelines view (not in the palette). */
  revealRun: 'conveyor.revealRun',
} as const;

/** Context keys the manifest's `when` clauses read. */
export const ContextKeys = {
  activated: 'conveyor.activated',
  hasConfig: 'conveyor.hasConfig',
  /** 'connected' | 'starting' | 'offline': the best state over the folders. */
  agentState: 'conveyor.agentState',
  multiRoot: 'conveyor.multiRoot',
} as const;

export const Settings = {
  section: 'conveyor',
  agentPath: 'agent.path',
  autoStart: 'agent.autoStart',
  runOnCommit: 'runOnCommit',
} as const;
