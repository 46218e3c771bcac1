/** The IDs of the deploy commands, shared by the manifest (package.json), the tree and the notifications. */
export const DeployCommands = {
  deployToEnvironment: 'conveyor.deployToEnvironment',
  promote: 'conveyor.promote',
  approve: 'conveyor.approve',
  reject: 'conveyor.reject',
  rollback: 'conveyor.rollback',
  openEnvironment: 'conveyor.openEnvironment',
  destroyPreview: 'conveyor.destroyPreview',
  /** A release node's inline action: Rollback… without the picks (not in the palette). */
  rollbackToRelease: 'conveyor.rollbackToRelease',
} as const;

/** The IDs of the GitOps commands: an environment's desired state in git against its live state. */
export const GitOpsCommands = {
  showDrift: 'conveyor.showDrift',
  syncEnvironment: 'conveyor.syncEnvironment',
  previewSync: 'conveyor.previewSync',
  openDesiredState: 'conveyor.openDesiredState',
  pauseReconcile: 'conveyor.pauseReconcile',
  resumeReconcile: 'conveyor.resumeReconcile',
} as const;

/** Statuses after which a deployment does not change any more. */
export const FINISHED_DEPLOYMENT_STATUSES = ['succeeded', 'rolled_back', 'failed', 'rejected', 'cancelled'] as const;
