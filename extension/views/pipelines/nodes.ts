import type { FolderNode } from './folderNode';
import type { MessageNode } from './messageNode';
import type { RunNode } from './runNode';
import type { StageNode } from './stageNode';
import type { StepNode } from './stepNode';

/** Every kind of node in the Pipelines view. */
export type PipelineNode = FolderNode | RunNode | StageNode | StepNode | MessageNode;
