/**
 * Conveyor's protocol: the vocabulary, the events, the config model and the shapes of the
 * HTTP and WebSocket API.
 *
 * This is the one module of `agent/` that the extension and the webview import. It holds
 * types and a few constants only, so that importing it pulls no agent code into a client bundle.
 *
 * ```
 *  trigger ──> engine ──> events (seq-numbered, persisted first) ──> store
 *                                                           └──> subscribers (WebSocket, CLI)
 * ```
 */

/** Bumped when a message or route changes shape incompatibly. */
export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

/** What started a run. */
export type Trigger = 'save' | 'commit' | 'manual' | 'api';

/** The `when` values a stage may declare: the triggers it takes part in. */
export type StageTrigger = 'save' | 'commit' | 'manual';

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

/**
 * A stage's or step's status. `waiting`: a deploy stage at an approval gate. `skipped`: a
 * dependency did not succeed (or the run was cancelled before it started). `interrupted`: the
 * agent stopped while it ran.
 */
export type StageStatus =
  | 'pending'
  | 'waiting'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'cancelled'
  | 'skipped'
  | 'interrupted';

export type StepStatus = StageStatus;

/** Statuses after which nothing changes any more. */
export const FINISHED_RUN_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled', 'interrupted'];
export const FINISHED_STAGE_STATUSES: readonly StageStatus[] = [
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'skipped',
  'interrupted',
];

/**
 * The stage kinds. `command` runs shell commands; `image` builds a container image from the
 * run's tree and pushes it to a registry; `deploy` deploys the run's artifact to an environment.
 * The test kinds: `smoke` probes a deployed environment over HTTP; `integration` runs its commands
 * beside service containers; `acceptance` runs its commands against an environment's URL; `matrix`
 * runs its commands once per combination of its axes; `load` puts an environment under load and
 * checks thresholds; `scan` checks the lockfiles' dependencies against advisories.
 */
export type StageKind = 'command' | 'image' | 'deploy' | 'smoke' | 'integration' | 'acceptance' | 'matrix' | 'load' | 'scan';

/** Test report formats the agent can read. */
export type ReportFormat = 'junit' | 'tap' | 'mocha-json';

// ---------------------------------------------------------------------------------------------
// Diagnostics: one model for the CLI, the API and the editor
// ---------------------------------------------------------------------------------------------

/** A position in a text file. Both numbers are 1-based, as a compiler prints them. */
export interface Position {
  line: number;
  column: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export interface RelatedLocation {
  file: string;
  range: Range;
  message: string;
}

/**
 * A problem found in a file the user wrote (conveyor.yml, a state file, a report).
 * `code` is a stable kebab-case reason; `fix` says what to write instead.
 */
export interface Diagnostic {
  severity: 'error' | 'warning';
  code: DiagnosticCode;
  message: string;
  file: string;
  range: Range;
  fix?: string;
  related?: RelatedLocation[];
}

export type DiagnosticCode =
  | 'missing-file'
  | 'unreadable-file'
  | 'yaml-syntax'
  | 'unknown-key'
  | 'wrong-type'
  | 'missing-key'
  | 'invalid-value'
  | 'unknown-need'
  | 'cycle'
  | 'duplicate-name';

// ---------------------------------------------------------------------------------------------
// Config: what conveyor.yml declares, after validation and defaults
// ---------------------------------------------------------------------------------------------

export interface ReportConfig {
  format: ReportFormat;
  /** Path of the report file, relative to the stage's working directory. */
  path: string;
}

/** A stage after validation: every optional key has its default. */
export interface StageConfig {
  name: string;
  kind: StageKind;
  /** For deploy stages: the environment to deploy to. */
  environment?: string;
  /** For deploy stages: the stage whose artifact is deployed (default: the one artifact of the stages it needs). */
  artifact?: string;
  /** For image stages: what to build and where to push it. */
  image?: ImageConfig;
  /** A post-deploy check of this deploy stage: when this stage fails, that deploy is rolled back. */
  verifies?: string;
  /** Where the steps run: on this machine (local, the default), or in a container, a swarm job or a Kubernetes Job. */
  executor?: ExecutorConfig;
  /** Shell commands; each one is a step. */
  run: string[];
  needs: string[];
  env: Record<string, string>;
  /** Working directory relative to the config file's folder. */
  workdir: string;
  /** Milliseconds; 0 means no limit. */
  timeoutMs: number;
  /** Extra attempts after a failure. */
  retries: number;
  when: StageTrigger[];
  report?: ReportConfig;
  /** Paths or globs, relative to the working directory, recorded after the stage succeeds. */
  artifacts: string[];
  /** For smoke stages: the HTTP probes of `environment`, one try each. */
  probes?: SmokeProbe[];
  /** For integration stages: the containers started beside the commands, in the order written. */
  services?: ServiceConfig[];
  /** For matrix stages: the axes whose combinations each run the commands. */
  matrix?: MatrixConfig;
  /** For load stages: the requests, the load and the thresholds. */
  load?: LoadConfig;
  /** For scan stages: the lockfiles, the advisory sources and the gate. */
  scan?: ScanConfig;
}

/**
 * Where a stage's steps run. Beyond `local`, each step runs in `image` (for docker, when there is
 * none, an image built from the Dockerfile of the run's snapshot), with the stage's folder
 * mounted read-only at /workspace and $CONVEYOR_OUT (/conveyor/out) collected back into it
 * afterwards, so reports and artifacts written there are read as usual. `$MATRIX_<AXIS>` in
 * `image` takes each matrix cell's value.
 */
export interface ExecutorConfig {
  kind: 'local' | 'docker' | 'swarm' | 'kubernetes';
  image: string | null;
  /** Kubernetes only: where the Job runs (default: the kubeconfig's context and namespace). */
  kubeconfig: string | null;
  context: string | null;
  namespace: string | null;
}

export interface ImageConfig {
  /** Repository name without the registry, e.g. "hello-service". */
  name: string;
  /** Registry host:port. Default 127.0.0.1:5000 (the agent starts one there when asked). */
  registry: string;
  /** Build context, relative to the stage's working directory. */
  context: string;
  dockerfile: string;
}

/** One HTTP request of a smoke stage and what its answer must be. */
export interface SmokeProbe {
  /** Shown as the test's name: "GET /healthz" unless named. */
  name: string;
  /** A path on the environment's URL, or an absolute URL (exactly one of them is set). */
  path: string | null;
  url: string | null;
  method: string;
  headers: Record<string, string>;
  body: string | null;
  /** Accepted status codes (default [200]). */
  status: number[];
  /** Texts the body must contain. */
  contains: string[];
  /** A regular expression the body must match. */
  matches: string | null;
  /** JSON paths ("$.status", "$.items[0].id") and the values they must equal. */
  json: Record<string, unknown>;
  /** The longest the answer may take, in milliseconds. */
  withinMs: number | null;
  /** How long the one try may take before it fails. */
  timeoutMs: number;
  /** Where the probe is written in conveyor.yml. */
  location: SourceLocation | null;
}

/** How an integration stage tells a service container is ready. */
export type ServiceHealth =
  | { kind: 'tcp' }
  | { kind: 'http'; path: string }
  /** A command run inside the container (docker exec); exit code 0 is healthy. */
  | { kind: 'command'; command: string[] };

/** A container an integration stage starts on the attempt's private network. */
export interface ServiceConfig {
  /** The name other services reach it by; also the prefix of its variables (DB_HOST, DB_PORT, DB_URL). */
  name: string;
  image: string;
  /** The container's command; empty: the image's own. */
  command: string[];
  env: Record<string, string>;
  /** The port the service listens on inside the container, published on 127.0.0.1. */
  port: number;
  health: ServiceHealth;
  /** How long it has to become healthy, in milliseconds. */
  timeoutMs: number;
}

/** The axes of a matrix stage and the combinations left out or allowed to fail. */
export interface MatrixConfig {
  /** In the order written. */
  axes: { name: string; values: string[] }[];
  /** Combinations not run: a cell matching every key of an entry is left out. */
  exclude: Record<string, string>[];
  /** Combinations that may fail without failing the stage. */
  optional: Record<string, string>[];
  /** Every combination that runs, in the axes' order (the first axis varies slowest). */
  cells: { values: Record<string, string>; optional: boolean }[];
}

/** Which cell of which matrix stage a stage is: on the cells' StageInfo. */
export interface MatrixCell {
  /** The matrix stage the cell belongs to. */
  of: string;
  /** Axis name to value, in the axes' order. */
  cell: Record<string, string>;
  /** The cell may fail without failing the matrix stage. */
  optional: boolean;
}

export type LoadMetric = 'p50' | 'p90' | 'p95' | 'p99' | 'max' | 'mean' | 'errorRate' | 'throughput';

/** A threshold of a load stage as written: `p95: "< 200ms"`. */
export interface LoadThresholdConfig {
  metric: LoadMetric;
  expr: string;
  location: SourceLocation | null;
}

/** What a load stage sends, how hard, and the thresholds its result must meet. */
export interface LoadConfig {
  /** A path on the environment's URL, or an absolute URL (exactly one of them is set). */
  path: string | null;
  url: string | null;
  method: string;
  headers: Record<string, string>;
  body: string | null;
  /** Concurrent connections (virtual users). */
  connections: number;
  /** Requests per second (a fixed arrival rate); null: each connection sends when the last answer arrives. */
  rate: number | null;
  durationMs: number;
  thresholds: LoadThresholdConfig[];
}

/** The figures of one load stage's result, as recorded for trends (the generator's LoadResult). */
/** One load stage attempt's figures, for the Metrics page's load trends. */
export interface LoadTrendPoint {
  runId: number;
  stage: string;
  attempt: number;
  environment: string;
  time: string;
  throughput: number;
  errorRate: number;
  p50: number;
  p95: number;
  p99: number;
  requests: number;
  generatorCpuShare: number;
}

/** GET /api/metrics/load: the newest load results, oldest first. */
export interface LoadTrend {
  stages: string[];
  points: LoadTrendPoint[];
}

/** The figures of one load test that a `load.reported` event records. */
export interface LoadSummary {
  /** Requests that ended: answered, or failed. */
  requests: number;
  /** Failed requests plus responses with a status of 400 or more. */
  errors: number;
  /** errors / requests, 0..1. */
  errorRate: number;
  statusCounts: Record<string, number>;
  /** ECONNREFUSED, timeout, reset, bad response, another error code, or "HTTP <status>". */
  errorKinds: Record<string, number>;
  /** Completed requests (responses) per second of the run. */
  throughput: number;
  /** Bytes received. */
  bytes: number;
  /** Of the responses, in ms. */
  latencyMs: { min: number; mean: number; p50: number; p90: number; p95: number; p99: number; max: number };
  /** From start until the last request in flight ended (or the abort). */
  durationMs: number;
  /** Arrival-rate requests not sent because every connection was busy. */
  dropped: number;
  /**
   * The generator process's own CPU time over the run, and its share of one core. Saturated
   * (above 0.9): the generator, not the target, may have set the pace.
   */
  generator: { cpuUserMs: number; cpuSystemMs: number; cpuShare: number; saturated: boolean };
}

/** What a scan stage checks and when it fails. */
export interface ScanConfig {
  /** Relative to the stage's working directory. */
  lockfiles: string[];
  sources: ScanSourceConfig[];
  failOn: 'low' | 'moderate' | 'high' | 'critical';
  /** What an advisory source that cannot be reached does to the stage. */
  unreachable: 'fail' | 'warn';
}

export type ScanSourceConfig =
  | { kind: 'npm-audit'; registry: string | null }
  | { kind: 'osv-api'; url: string }
  /** A folder of OSV JSON records, relative to the config file's folder. */
  | { kind: 'osv-folder'; path: string };

export type RuntimeName = 'process' | 'docker' | 'swarm' | 'kubernetes';
export type PromotionMode = 'auto' | 'manual';

export interface EnvironmentConfig {
  name: string;
  runtime: RuntimeName;
  promotion: PromotionMode;
  /** The port users reach it on (127.0.0.1); when absent the agent allocates one and keeps it. */
  port: number | null;
  strategy: DeployStrategy;
  health: HealthCheck;
  /** The command that starts the service in an unpacked files artifact. */
  start: string[];
  /** The port the service listens on inside its instance ($PORT). */
  containerPort: number;
  env: Record<string, string>;
  replicas: number;
  /** A template: not deployed itself, but instantiated per branch as a preview environment. */
  preview: boolean;
  /** Every key as written, for runtime-specific settings (resources, ...). */
  settings: Record<string, unknown>;
  /** What the reconciler does about differences between git and the live environment. */
  reconcile: ReconcilePolicy;
  /** Image update automation: new registry tags matching a policy are committed to the desired state. */
  imageUpdate: ImageUpdatePolicy | null;
}

export interface ReconcilePolicy {
  /** Correct drift automatically. */
  selfHeal: boolean;
  /** Remove labelled instances that are no longer desired. */
  prune: boolean;
  /** Report only: apply nothing until someone asks for a sync. */
  manual: boolean;
}

export interface ImageUpdatePolicy {
  /** registry/name, e.g. 127.0.0.1:5000/hello. */
  repository: string;
  /** A semver range the tag must satisfy (the highest wins). */
  semver: string | null;
  /** A regular expression the tag must match (the highest in natural order wins). */
  pattern: string | null;
  intervalMs: number;
}

/** Where the desired state of the environments lives in git. */
export interface GitOpsConfig {
  /** Another repository (URL or path); null: the workspace's own repository. */
  repo: string | null;
  branch: string;
  /** Folder on the branch holding <environment>.yml files. */
  path: string;
  intervalMs: number;
}

export type OnNewRun = 'queue' | 'supersede';

export interface PipelineConfig {
  name: string;
  /** Branches whose new commits start runs. Empty: the branch checked out when the agent starts. */
  branches: string[];
  /** How many stages may run at once. */
  maxParallel: number;
  /** What happens when a run starts while another run of this pipeline is in progress. */
  onNewRun: OnNewRun;
  stages: StageConfig[];
}

export interface WatchConfig {
  include: string[];
  exclude: string[];
  stages: string[];
  /** Globs of the test files; save runs pass the affected ones to their stages as $CONVEYOR_TESTS. */
  tests: string[];
}

export interface ConveyorConfig {
  pipeline: PipelineConfig;
  environments: EnvironmentConfig[];
  watch: WatchConfig;
  /** Names of secrets; values come from the agent's environment or `.conveyor/secrets.env`. */
  secrets: string[];
  gitops: GitOpsConfig;
  alerts: AlertsConfig;
}

/** The agent's view of the config file: valid (with the model) or not (with its diagnostics). */
export type ConfigState =
  | { valid: true; file: string; config: ConveyorConfig; diagnostics: Diagnostic[] }
  | { valid: false; file: string; diagnostics: Diagnostic[] };

// ---------------------------------------------------------------------------------------------
// Runs, stages, steps, test results, artifacts
// ---------------------------------------------------------------------------------------------

export interface RunSummary {
  /** Short and copyable: run #42. */
  id: number;
  pipeline: string;
  trigger: Trigger;
  status: RunStatus;
  /** The commit the run is pinned to; null for a working-tree run. */
  commit: string | null;
  /** The branch the commit was taken from, when known. */
  branch: string | null;
  /** First line of the commit message. */
  title: string | null;
  /**
   * The commit's committer date (ISO-8601, UTC): where lead time for changes starts. Null for a
   * working-tree run; absent in runs recorded before Conveyor kept it.
   */
  commitTime?: string | null;
  /** The stages this run executes: those asked for (or chosen by the trigger) and what they need. */
  requestedStages: string[];
  /** ISO-8601 times. */
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Why the run ended as it did, when that is not obvious (superseded, interrupted, ...). */
  reason: string | null;
  /** For save runs: which tests the develop loop chose, and why. */
  impact: TestImpact | null;
}

export interface StageInfo {
  runId: number;
  name: string;
  kind: StageKind;
  status: StageStatus;
  needs: string[];
  /** 1-based attempt number of the latest attempt; 0 before the first. */
  attempt: number;
  startedAt: string | null;
  finishedAt: string | null;
  /** A one-line explanation: "exit code 1 in step 2", "timed out after 5s", "needs build (failed)". */
  message: string | null;
  /** Set on each cell of a matrix stage: which stage it belongs to and its combination. */
  matrix?: MatrixCell;
}

export interface StepInfo {
  runId: number;
  stage: string;
  attempt: number;
  /** 0-based index of the command in the stage's `run` list. */
  index: number;
  command: string;
  status: StepStatus;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

/**
 * Which tests a develop-loop (save) run chose, and why. `affected`: only the test files that
 * import a changed file, directly or not. `all`: every test file, because a change could not be
 * placed in the import graph (a config file, the lockfile, an unknown file). `whole-stage`: the
 * project is not JS/TS or declares no test files, so the watch stages run as written.
 */
export interface TestImpact {
  mode: 'affected' | 'all' | 'whole-stage';
  /** Files whose change started the run, relative to the workspace, forward slashes. */
  changed: string[];
  /** The test files the run runs (relative); empty for whole-stage. */
  tests: string[];
  /** Why everything runs, when it does. */
  reason: string | null;
}

export interface RunDetail extends RunSummary {
  /** Sequence number of the run's first event: follow the run with `since = firstSeq - 1`. */
  firstSeq: number;
  stages: StageInfo[];
  steps: StepInfo[];
  artifacts: ArtifactInfo[];
}

export interface SourceLocation {
  /** Absolute path when the file is inside the workspace. */
  file: string;
  line: number;
  column: number;
}

export type TestStatus = 'passed' | 'failed' | 'skipped';

export interface TestResult {
  suite: string;
  name: string;
  status: TestStatus;
  durationMs: number | null;
  message: string | null;
  expected: string | null;
  actual: string | null;
  stack: string | null;
  location: SourceLocation | null;
}

export interface StageTestResults {
  runId: number;
  stage: string;
  attempt: number;
  results: TestResult[];
}

export interface ArtifactInfo {
  runId: number;
  stage: string;
  /** A file stored by content, or a container image in a registry. */
  kind: 'file' | 'image';
  /** A file: its path relative to the stage's working directory. An image: repository:tag. */
  path: string;
  /** `sha256:<hex>`: the artifact's name by content (for an image, its manifest digest). */
  digest: string;
  /** Bytes; 0 for images. */
  size: number;
}

// ---------------------------------------------------------------------------------------------
// Releases and environments
// ---------------------------------------------------------------------------------------------

/**
 * What a release runs, named by content. An image is pulled by digest; a files artifact is the
 * sha256 of a file in the agent's artifact store (a tarball or a single file).
 */
export type ArtifactRef =
  | { kind: 'image'; repository: string; digest: string }
  | { kind: 'files'; digest: string; name: string };

/** How a release replaces the one before it. */
export type DeployStrategy = 'recreate' | 'blue-green';

/** The health check an environment declares. A release is live only when healthy. */
export type HealthCheck =
  | { kind: 'tcp'; timeoutMs: number; intervalMs: number }
  | { kind: 'http'; path: string; timeoutMs: number; intervalMs: number }
  | { kind: 'command'; command: string; timeoutMs: number; intervalMs: number };

/** An artifact plus the environment's config, as deployed to one environment: staging@7. */
export interface Release {
  environment: string;
  number: number;
  artifact: ArtifactRef;
  /** The process to start: for files artifacts a command run in the unpacked folder; for images the container's command (empty: the image's own). */
  command: string[];
  env: Record<string, string>;
  /** The port the service listens on inside its instance (PORT is set to it for processes). */
  containerPort: number;
  replicas: number;
  runId: number | null;
  commit: string | null;
  createdAt: string;
  createdBy: string;
}

/** Argo CD's two axes: is the live state what git says (sync), and is it working (health). */
export type HealthStatus = 'Healthy' | 'Progressing' | 'Degraded' | 'Missing';
export type SyncStatus = 'Synced' | 'OutOfSync';

/** One running copy of a release, as the runtime reports it. */
export interface LiveInstance {
  /** Container id, process id or task id. */
  id: string;
  environment: string;
  release: number;
  artifactDigest: string;
  /** Where the instance answers on this machine (host:port), when it does. */
  address: string | null;
  state: 'starting' | 'running' | 'exited' | 'unknown';
  env: Record<string, string>;
  labels: Record<string, string>;
}

/** Everything a runtime sees of one environment. */
export interface LiveState {
  environment: string;
  instances: LiveInstance[];
}

/**
 * An environment's desired state, as its state file in git says (<path>/<environment>.yml on the
 * state branch). Deploys, promotions and rollbacks commit it; anyone may edit and commit it.
 */
export interface EnvironmentState {
  environment: string;
  /** The artifact by content; `tag` is informative (image update automation writes it). */
  artifact: ArtifactRef & { tag?: string };
  command: string[];
  env: Record<string, string>;
  replicas: number;
  containerPort: number;
  /** Where the release came from, when Conveyor wrote it. */
  source: { release: number | null; run: number | null; commit: string | null };
}

/** One difference between what should run and what runs. */
export interface DriftItem {
  /** What differs: image, env.NAME, replicas, containerPort, publicPort, command, instance <id>. */
  path: string;
  kind: 'changed' | 'missing' | 'extra' | 'stopped';
  desired: string | null;
  live: string | null;
  /** One line for people. */
  message: string;
}

/**
 * The reconciler's view of one environment, on Argo CD's two axes: sync (is the live state what
 * git says?) and health (does it work?).
 */
export interface SyncInfo {
  environment: string;
  /** Unknown: the desired state or the live state could not be read (see `error`). */
  sync: SyncStatus | 'Unknown';
  health: HealthStatus;
  /** The state branch's commit the comparison used. */
  revision: string | null;
  /**
   * Why it is out of sync: `desired` (git changed and is not applied yet), `drift` (the live
   * environment changed by hand), or both. Empty when synced.
   */
  causes: ('desired' | 'drift')[];
  diff: DriftItem[];
  policy: ReconcilePolicy;
  paused: boolean;
  /** The state file, relative to the state branch's root, and where its error is. */
  file: string;
  error: { message: string; line: number | null; column: number | null } | null;
  checkedAt: string;
}

/** GET /api/environments/:name/state: the desired state file and the live state, side by side. */
export interface StateView {
  sync: SyncInfo;
  /** The state file's text at `sync.revision`; null when the environment has none yet. */
  desired: string | null;
  /** The live state, written in the state file's format, so the two compare line by line. */
  live: string;
  /** The line (1-based) of each key of the desired state file: artifact, env.NAME, replicas, ... */
  lines: Record<string, number>;
  /** Where the state is kept: the repository (null: the workspace's) and branch. */
  repo: string | null;
  branch: string;
}

/** POST /api/environments/:name/sync: what was (or, with dryRun, would be) done. */
export interface SyncResult {
  sync: SyncInfo;
  /** One line per action: deploy release N, remove instance X, restart ... */
  plan: string[];
  dryRun: boolean;
  deployment: DeploymentInfo | null;
}

export type DeploymentStatus = 'queued' | 'waiting' | 'running' | 'succeeded' | 'rolled_back' | 'failed' | 'rejected' | 'cancelled';

/** Moving an environment from one release to another: deploy #12, staging 6 → 7. */
export interface DeploymentInfo {
  id: number;
  environment: string;
  fromRelease: number | null;
  toRelease: number;
  strategy: DeployStrategy;
  /** pipeline: a deploy stage; rollback: back to an earlier release; manual: asked for directly; sync: the desired state in git changed; heal: drift corrected. */
  trigger: 'pipeline' | 'rollback' | 'manual' | 'sync' | 'heal';
  status: DeploymentStatus;
  /** What went wrong, or who decided what. */
  reason: string | null;
  runId: number | null;
  stage: string | null;
  requestedBy: string;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A manual promotion waiting for a person: approve or reject, with who, when and why kept. */
export interface ApprovalInfo {
  id: number;
  deploymentId: number;
  environment: string;
  release: number;
  runId: number | null;
  stage: string | null;
  status: 'pending' | 'approved' | 'rejected';
  requestedAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
  reason: string | null;
}

/** An environment made from a preview template for one branch: preview-feature-login. */
export interface PreviewInfo {
  name: string;
  template: string;
  branch: string;
  createdAt: string;
  createdBy: string;
}

/** What is known of one environment now: for the Environments tree and `conveyor envs`. */
export interface EnvironmentStatus {
  name: string;
  runtime: RuntimeName;
  promotion: PromotionMode;
  /** http://127.0.0.1:<port>, once a port is known. */
  url: string | null;
  live: Release | null;
  liveSince: string | null;
  liveBy: string | null;
  health: HealthStatus;
  /** Newest first, bounded. */
  releases: Release[];
  pendingApproval: ApprovalInfo | null;
  /** Deployments waiting for the environment's lock, oldest first. */
  queue: DeploymentInfo[];
  /** The deployment in progress, if any. */
  current: DeploymentInfo | null;
  /** Set for a preview environment: its template and branch. */
  preview: PreviewInfo | null;
  /** Sync and health against the desired state in git; null when the workspace is not in a git repository. */
  sync: SyncInfo | null;
}

// ---------------------------------------------------------------------------------------------
// Events: the append-only record; the UI state is a fold over them
// ---------------------------------------------------------------------------------------------

export type AgentEvent =
  | { type: 'agent.started'; pid: number; version: string; interruptedRuns: number[] }
  | { type: 'config.changed'; state: ConfigState }
  | { type: 'sync.changed'; status: SyncInfo }
  | { type: 'drift.detected'; environment: string; revision: string | null; items: DriftItem[]; action: 'healed' | 'healing' | 'reported' | 'paused' }
  | { type: 'state.committed'; environment: string; branch: string; commit: string; message: string }
  | { type: 'image.update'; environment: string; repository: string; tag: string; digest: string; commit: string }
  | { type: 'run.queued'; run: RunSummary }
  | { type: 'run.started'; run: RunSummary }
  | { type: 'run.finished'; run: RunSummary }
  | { type: 'stage.changed'; stage: StageInfo }
  | { type: 'step.changed'; step: StepInfo }
  | { type: 'log'; runId: number; stage: string; attempt: number; step: number; text: string }
  /**
   * Test results of a stage attempt. A big report comes as several of these events in a row
   * (about 1 MiB or 1000 results each), which append: `first` is the index of the event's first
   * result in the report (absent: 0, a report of one event), `passed`/`failed`/`skipped` count
   * the event's own results, and `total` is the number of results in the whole report. `note`,
   * on the first event only, says what was left out (messages shortened past the report's
   * budget) and where the full report is.
   */
  | {
      type: 'tests.reported';
      runId: number;
      stage: string;
      attempt: number;
      passed: number;
      failed: number;
      skipped: number;
      results: TestResult[];
      first?: number;
      total?: number;
      note?: string;
    }
  | { type: 'report.unreadable'; runId: number; stage: string; attempt: number; path: string; reason: string }
  | { type: 'load.reported'; runId: number; stage: string; attempt: number; environment: string; url: string; result: LoadSummary }
  | { type: 'artifact.recorded'; artifact: ArtifactInfo }
  | { type: 'release.created'; release: Release }
  | { type: 'deployment.changed'; deployment: DeploymentInfo }
  | { type: 'deployment.progress'; deploymentId: number; environment: string; message: string }
  | { type: 'approval.changed'; approval: ApprovalInfo }
  | { type: 'environment.health'; environment: string; health: HealthStatus; release: number | null }
  | { type: 'preview.created'; preview: PreviewInfo }
  | { type: 'preview.destroyed'; name: string; reason: string }
  | { type: 'scan.reported'; runId: number; stage: string; attempt: number; failOn: Severity; ok: boolean; verdict: string; report: ScanReport }
  | { type: 'alert.changed'; alert: Alert }
  | { type: 'alert.delivery'; alertId: number; sink: 'webhook'; ok: boolean; attempts: number; error: string | null };

export type AgentEventType = AgentEvent['type'];

// ---------------------------------------------------------------------------------------------
// Vulnerability scans
// ---------------------------------------------------------------------------------------------

export type Severity = 'low' | 'moderate' | 'high' | 'critical';

/** Where advisories come from. */
export type ScanSource = { kind: 'npm-audit'; registry: string | null } | { kind: 'osv-api'; url: string } | { kind: 'osv-folder'; path: string /* absolute */ };

/** One advisory affecting one installed version in one lockfile. */
export interface Finding {
  id: string;
  aliases: string[];
  summary: string;
  severity: Severity;
  /** Whether the severity is the advisory's own rating, a CVSS vector's score, or unknown (then it counts as moderate). */
  severityBasis: 'advisory' | 'cvss' | 'unknown';
  /** The CVSS base score, when the severity came from a vector or the advisory gives one. */
  cvssScore: number | null;
  package: string;
  version: string;
  fixedIn: string | null;
  /** Relative path. */
  lockfile: string;
  /**
   * Where the dependency is declared, for a diagnostic: package.json path (relative to cwd) and
   * 1-based line/column of its key, when it is a direct dependency. For a transitive one, the
   * declaration of the direct dependency that brings it in (via[0]). Null when none is known.
   */
  declared: { file: string; line: number; column: number } | null;
  /** The chain from a direct dependency, e.g. ["express", "body-parser", "qs"]. */
  via: string[];
  source: ScanSource['kind'];
  url: string | null;
}

export interface SourceStatus {
  source: ScanSource['kind'];
  /** The source and where it is: "OSV API https://api.osv.dev". */
  label: string;
  status: 'scanned' | 'unreachable';
  /** Why it was not scanned ("not scanned: <reason>"); null when scanned. */
  reason: string | null;
  /** Distinct advisories it found for the scanned packages. */
  advisories: number;
}

export interface ScanReport {
  /** Distinct name@version scanned, over all lockfiles. */
  packages: number;
  /** Most severe first. */
  findings: Finding[];
  sources: SourceStatus[];
  lockfiles: string[];
}

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------

export type AlertRuleName = 'pipelineFailed' | 'slower' | 'drift' | 'rollback' | 'vulnerability' | 'flaky';

/** The alert rules of conveyor.yml (`alerts:`), with their defaults filled in; null: the rule is off. */
export interface AlertsConfig {
  /** A run of the pipeline failed on one of these branches (default: the followed branches, else main and master). */
  pipelineFailed: { branches: string[] } | null;
  /** A stage or a deploy took longer than its p95 of the previous 4 weeks by more than `percent`. */
  slower: { percent: number; minSamples: number } | null;
  /** Drift detected and not healed. */
  drift: {} | null;
  /** An automatic rollback happened. */
  rollback: {} | null;
  /** A scan found a vulnerable dependency at or above `severity`. */
  vulnerability: { severity: 'low' | 'moderate' | 'high' | 'critical' } | null;
  /** A test flipped between pass and fail at least `flips` times in its last `window` results. */
  flaky: { window: number; flips: number } | null;
  /** POST each new alert as JSON, with retries and a time-out. */
  webhook: { url: string; timeoutMs: number; retries: number } | null;
}

/** A rule that fired, with its evidence. The same cause fires once: repeats count on the open alert. */
export interface Alert {
  /** Short and copyable: alert #7. */
  id: number;
  rule: AlertRuleName;
  /** What makes two firings the same alert (a stage, an environment, a test). */
  key: string;
  severity: 'warning' | 'error';
  title: string;
  /** The evidence, one line per fact. */
  detail: string[];
  runId: number | null;
  environment: string | null;
  stage: string | null;
  /** The event that fired it (or fired it again). */
  seq: number;
  firstAt: string;
  lastAt: string;
  count: number;
  status: 'open' | 'snoozed' | 'resolved';
  snoozedUntil: string | null;
  resolvedAt: string | null;
  resolvedBy: string | null;
}

/** An event as stored and sent: the global sequence number is strictly increasing, from 1. */
export type SequencedEvent = AgentEvent & { seq: number; time: string };

// ---------------------------------------------------------------------------------------------
// Discovery and HTTP API
// ---------------------------------------------------------------------------------------------

/** Written to `.conveyor/agent.json` in the workspace, mode 0600. */
export interface AgentDiscovery {
  port: number;
  pid: number;
  token: string;
  version: string;
  protocol: number;
  workspace: string;
  startedAt: string;
}

/** Relative to the workspace folder. */
export const DISCOVERY_FILE = '.conveyor/agent.json';

/**
 * Routes (all under `http://127.0.0.1:<port>`, all need `Authorization: Bearer <token>`):
 *
 * | method | path                                  | body / query                       | answer           |
 * |--------|---------------------------------------|------------------------------------|------------------|
 * | GET    | /api/health                           |                                    | Health           |
 * | GET    | /api/config                           |                                    | ConfigState      |
 * | POST   | /api/validate                         | { text } (unsaved conveyor.yml)    | { diagnostics }  |
 * | GET    | /api/runs                             | ?limit=N (newest first, max 500)   | RunSummary[]     |
 * | POST   | /api/runs                             | StartRunRequest                    | 201 RunSummary   |
 * | GET    | /api/runs/:id                         |                                    | RunDetail        |
 * | POST   | /api/runs/:id/cancel                  |                                    | RunSummary       |
 * | POST   | /api/runs/:id/rerun                   |                                    | 201 RunSummary   |
 * | GET    | /api/runs/:id/logs                    | ?stage=S&attempt=A&step=I          | text/plain       |
 * | GET    | /api/runs/:id/tests                   |                                    | StageTestResults[] |
 * | GET    | /api/events                           | ?since=N&limit=M                   | SequencedEvent[] |
 * | GET    | /api/watch                            |                                    | WatchState       |
 * | POST   | /api/watch                            | { enabled: boolean }               | WatchState       |
 * | GET    | /api/environments                     |                                    | EnvironmentStatus[] |
 * | POST   | /api/environments/:name/deploy        | { run?, stage?, via? }             | 202 DeploymentInfo |
 * | POST   | /api/environments/:name/promote       | { from, via? }                     | 202 DeploymentInfo |
 * | POST   | /api/environments/:name/rollback      | { to?, via? }                      | 202 DeploymentInfo |
 * | GET    | /api/environments/:name/state         | (desired in git against live)      | StateView        |
 * | POST   | /api/environments/:name/sync          | { dryRun?, via? }                  | SyncResult       |
 * | POST   | /api/environments/:name/reconcile     | { paused }                         | SyncInfo         |
 * | GET    | /api/deployments/:id                  |                                    | DeploymentInfo   |
 * | GET    | /api/approvals                        | (pending ones)                     | ApprovalInfo[]   |
 * | POST   | /api/approvals/:id/approve, /reject   | { reason?, via? }                  | ApprovalInfo     |
 * | GET    | /api/previews                         |                                    | PreviewInfo[]    |
 * | POST   | /api/previews                         | { branch, template?, via? }        | 201 { preview, deployment } |
 * | DELETE | /api/previews/:name                   |                                    | { destroyed }    |
 * | WS     | /api/events                           | ?since=N (token: header or ?token=)| ServerMessage*   |
 * | GET    | /api/alerts                           | ?all=1                             | Alert[]          |
 * | POST   | /api/alerts/:id/snooze, /resolve      | { for?, via? }                     | Alert            |
 * | GET    | /api/metrics/dora, /builds, /durations, /load | see Metrics                | DoraReport, ...  |
 * | GET    | /api/timeline, /api/incidents/changes, /api/commits/:sha/diff |             | TimelinePage, ...|
 * | GET    | /dashboard/run.html, metrics.html, timeline.html | (pages, strict CSP)     | text/html        |
 *
 * The dashboard pages sign a browser in once: /dashboard/?token=T sets an HttpOnly, SameSite=Strict
 * cookie and redirects without the token; the cookie is taken only from the agent's own origin
 * (same-origin fetches and the WebSocket). Editor webviews send the Bearer token; their CORS
 * preflights are answered for loopback and vscode-webview origins only.
 *
 * Errors answer `ApiError` with a 4xx status.
 */
export const API_PREFIX = '/api';

export interface StartRunRequest {
  /** Run these stages (and what they need). Default: every stage whose `when` includes the trigger. */
  stages?: string[];
  /** Pin the run to this commit (any revision git understands). Default: HEAD. */
  commit?: string;
  /** Run in the working tree instead of a snapshot of a commit. */
  workingTree?: boolean;
  /** Default `api` over HTTP; the CLI and the editor say `manual`. */
  trigger?: 'manual' | 'api';
  /** Run just these test files (workspace-relative): the stages get them as $CONVEYOR_TESTS. */
  tests?: string[];
}

export interface Health {
  ok: true;
  version: string;
  protocol: number;
  pid: number;
  workspace: string;
  startedAt: string;
  lastSeq: number;
  configValid: boolean;
  activeRuns: number[];
  /** The SQLite engine the history runs on: native (better-sqlite3) or wasm (node-sqlite3-wasm). */
  sqlite: 'native' | 'wasm';
}

/** The develop loop: whether saves start runs, and what it watches. */
export interface WatchState {
  /** Saves start runs (the editor's continuous run toggles this). */
  enabled: boolean;
  /** The watcher is ready (its first scan of the tree is done). */
  ready: boolean;
  /** The stages a save run asks for. */
  stages: string[];
  /** Why the loop cannot run, when it cannot (no watch stages, invalid config, ...). */
  problem: string | null;
}

export interface ApiError {
  error: string;
  /** What to do about it. */
  fix?: string;
  diagnostics?: Diagnostic[];
}

// ---------------------------------------------------------------------------------------------
// WebSocket messages
// ---------------------------------------------------------------------------------------------

/**
 * Server to client. After `hello`, the server sends every event with `seq > since` exactly once
 * and in order, in batches. A client that reconnects passes the last `seq` it saw as `since`.
 */
export type ServerMessage =
  | { type: 'hello'; version: string; protocol: number; lastSeq: number }
  | { type: 'events'; events: SequencedEvent[] }
  | { type: 'error'; error: string };

/** Client to server. Nothing is required; `ping` answers nothing but keeps proxies awake. */
export type ClientMessage = { type: 'ping' };

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

/** A time window: from `from` (included) to `to` (excluded), ISO-8601 UTC. */
export interface TimeWindow {
  from: string;
  to: string;
}

/** A DORA performance band, by the thresholds of the State of DevOps reports (see DORA_BANDS). */
export type DoraBand = 'elite' | 'high' | 'medium' | 'low';

/**
 * The four DORA keys of one production environment over a window, from the recorded
 * deployments, releases, runs and health events. Rollbacks are restores, not changes: they count
 * neither as deployments nor as changes, but a rollback marks the change before it as failed.
 */
export interface DoraReport {
  environment: string;
  window: TimeWindow;
  deploymentFrequency: {
    /** Succeeded deployments of a release (rollbacks excluded) that finished in the window. */
    deployments: number;
    perDay: number;
    perWeek: number;
    /** One entry per UTC day the window touches, oldest first. */
    daily: { date: string; deployments: number }[];
    band: DoraBand;
  };
  leadTime: {
    /** Commits whose first succeeded deployment to the environment finished in the window. */
    samples: number;
    /** Such deployments whose run has no commit time (recorded before it was kept, or working tree). */
    withoutCommitTime: number;
    medianMs: number | null;
    p90Ms: number | null;
    /** By the median; null without samples. */
    band: DoraBand | null;
  };
  changeFailureRate: {
    /** Deployments of a release that finished in the window: succeeded, failed or rolled back. */
    deployments: number;
    /** Those that failed, rolled back, or were followed by a rollback deployment. */
    failures: number;
    /** failures / deployments, 0..1; null without deployments. */
    rate: number | null;
    /** Ids of the failed changes, oldest first. */
    failed: number[];
    band: DoraBand | null;
  };
  timeToRestore: {
    /** Failures that began in the window (while the environment was not already failing). */
    incidents: RestoreIncident[];
    /** Median of the restored incidents' durations; null when none was restored. */
    medianMs: number | null;
    band: DoraBand | null;
  };
}

/** From a production failure to the next healthy or succeeded state. */
export interface RestoreIncident {
  startedAt: string;
  /** What began it: "deploy #12 failed", "health Degraded". */
  cause: string;
  /** Null while it lasts. */
  restoredAt: string | null;
  /** What ended it: "deploy #13 succeeded", "health Healthy". */
  restoredBy: string | null;
  durationMs: number | null;
}

/** Runs queued on one UTC day, by status. */
export interface BuildDay {
  /** YYYY-MM-DD (UTC). */
  date: string;
  runs: number;
  byStatus: Record<RunStatus, number>;
  /** succeeded / (succeeded + failed), 0..1; null when none of them finished either way. */
  successRate: number | null;
}

/** Builds per day over the last N days, oldest first, with the totals. */
export interface BuildStats {
  window: TimeWindow;
  days: BuildDay[];
  runs: number;
  byStatus: Record<RunStatus, number>;
  successRate: number | null;
}

/** One week of a stage's durations (succeeded attempts); percentiles are nearest-rank. */
export interface DurationWeek {
  from: string;
  to: string;
  samples: number;
  p50Ms: number | null;
  p95Ms: number | null;
  /** p95 of the 4 weeks before this one, pooled; null when they have no sample. */
  baselineP95Ms: number | null;
  /** This week's p95 is more than `thresholdPct` above the baseline. */
  regression: boolean;
}

export interface StageDurationTrend {
  stage: string;
  /** Oldest first; the same weeks for every stage. */
  weeks: DurationWeek[];
}

/** Duration p50/p95 per stage per week over N weeks, with regression markers. */
export interface DurationTrends {
  window: TimeWindow;
  thresholdPct: number;
  stages: StageDurationTrend[];
}

/** What a duration belongs to: a stage (by name, across runs), or an environment's deployments. */
export type DurationSubject = { stage: string } | { environment: string };

/** Whether the newest duration is slower than the p95 of the 4 weeks before it, and the evidence. */
export interface SlowdownEvidence {
  subject: DurationSubject;
  durationMs: number;
  /** The 4 weeks before the newest one started. */
  baseline: TimeWindow;
  samples: number;
  baselineP95Ms: number | null;
  thresholdPct: number;
  /** baselineP95Ms raised by thresholdPct: slower means above it. */
  limitMs: number | null;
  /** How far above the baseline p95 the newest is, in percent (negative: below). */
  pctAbove: number | null;
  slower: boolean;
  /** One line for people: "build took 3m 10s, 46% above its 4-week p95 of 2m 10s (120 runs)". */
  message: string;
}

/** Families of events for the timeline's `kinds` filter; an exact event type works too. */
export type TimelineFamily = 'run' | 'test' | 'deploy' | 'drift' | 'alert' | 'commit' | 'config' | 'agent' | 'log';

/** GET-style query of the timeline: newest first, bounded, with optional filters. */
export interface TimelineQuery {
  /** Only events with a smaller seq: the `next` of the previous page. */
  before?: number;
  /** 1..500, default 50. */
  limit?: number;
  environment?: string;
  stage?: string;
  /** Families (run, deploy, drift, alert, test, commit, config, agent, log) or event types (run.finished). */
  kinds?: string[];
  /** Case-insensitive; matches an item's title or any text of its event. */
  text?: string;
  /** Log lines are left out unless asked for (here, or with the `log` kind). */
  includeLogs?: boolean;
}

/** One line of the timeline. */
export interface TimelineItem {
  seq: number;
  time: string;
  type: string;
  family: TimelineFamily | null;
  /** One line: "Deploy #12 production 6 → 7 failed: health check timed out". */
  title: string;
  level: 'info' | 'success' | 'warning' | 'error';
  links: { runId: number | null; environment: string | null; release: number | null; deployment: number | null };
}

/**
 * A page of the timeline. `next` is the `before` of the next page, null at the beginning of the
 * history. A page with a text or stage filter looks at a bounded span of the history, so it may
 * hold fewer than `limit` items and still have a `next`.
 */
export interface TimelinePage {
  items: TimelineItem[];
  next: number | null;
}

/** What an incident is: a deployment (failed, rolled back, or a rollback), or any event. */
export type IncidentRef = { deployment: number } | { seq: number };

/** A commit in the window before an incident, with its diff stat. */
export interface ChangedCommit {
  sha: string;
  author: string;
  committedAt: string;
  subject: string;
  /** Lines added and deleted per file; null for binary files. */
  files: { path: string; added: number | null; deleted: number | null }[];
  added: number;
  deleted: number;
}

/** A release and its commit, on either side of the change window. */
export interface ReleasePoint {
  environment: string | null;
  release: number | null;
  commit: string | null;
}

/** What changed before an incident: commits, config changes and deployments in the window. */
export interface ChangesBefore {
  incident: { seq: number | null; time: string; title: string; environment: string | null; deployment: number | null };
  /** From the previous good state to the incident. */
  window: TimeWindow;
  /** The previous good release (or run), when there is one. */
  good: ReleasePoint | null;
  /** The failing release (or run). */
  bad: ReleasePoint | null;
  /** Newest first: good..bad when both commits are known, else the commits dated in the window. */
  commits: ChangedCommit[];
  /** More commits than were listed. */
  commitsTruncated: boolean;
  /** Why the commits could not be listed (no repository, a commit git does not know). */
  gitProblem: string | null;
  /** config.changed events in the window, newest first. */
  configChanges: TimelineItem[];
  /** Deployments (every environment) queued or finished in the window, newest first. */
  deployments: DeploymentInfo[];
}

/** One commit's patch, asked for separately (it can be large). */
export interface CommitDiff {
  sha: string;
  subject: string;
  patch: string;
  /** The patch was cut at the size limit. */
  truncated: boolean;
}
