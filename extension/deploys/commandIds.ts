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

/** Statuses after which a deployment does not change any more. */
export const FINISHED_DEPLOYMENT_STATUSES = ['succeeded', 'rolled_back', 'failed', 'rejected', 'cancelled'] as const;
