/**
 * The config analyzer: the one validator of conveyor.yml, shared by the CLI, the API and the
 * editor. See analyzer.ts for how it works and conveyor.schema.json for what it accepts.
 */

import { findSchemaPath } from './schema';

export { analyzeConfigText, STARTER_CONFIG, type AnalyzeOptions } from './analyzer';
export { CONFIG_FILE_NAMES, loadConfig, locateConfigKey } from './load';
export { formatDiagnosticLine, formatDiagnosticPretty } from './format';
export { parseDuration, durationToMs } from './duration';

/**
 * Path of the schema file, for the editor's yamlValidation and the API: next to this module
 * (out/ after tsc, or dist/ where the bundle copies it), else its place in the source tree.
 */
export const SCHEMA_PATH: string = findSchemaPath();
