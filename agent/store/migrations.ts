/**
 * Versioned schema migrations. `PRAGMA user_version` holds the number of the last one applied.
 * Append new migrations; never edit one that has shipped.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: events and the tables derived from them.
  `
  CREATE TABLE events (
    seq     INTEGER PRIMARY KEY,
    time    TEXT NOT NULL,
    type    TEXT NOT NULL,
    run_id  INTEGER,
    body    TEXT NOT NULL
  );
  CREATE INDEX events_run ON events(run_id, seq) WHERE run_id IS NOT NULL;
  CREATE INDEX events_type ON events(type, seq);

  CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    pipeline    TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    status      TEXT NOT NULL,
    commit_sha  TEXT,
    branch      TEXT,
    title       TEXT,
    requested   TEXT NOT NULL,
    queued_at   TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    reason      TEXT
  );
  CREATE INDEX runs_status ON runs(status);

  CREATE TABLE stages (
    run_id      INTEGER NOT NULL,
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    needs       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    message     TEXT,
    PRIMARY KEY (run_id, name)
  );

  CREATE TABLE steps (
    run_id      INTEGER NOT NULL,
    stage       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    command     TEXT NOT NULL,
    status      TEXT NOT NULL,
    exit_code   INTEGER,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, stage, attempt, idx)
  );

  CREATE TABLE test_results (
    run_id      INTEGER NOT NULL,
    stage       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    ord         INTEGER NOT NULL,
    suite       TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    duration_ms REAL,
    message     TEXT,
    expected    TEXT,
    actual      TEXT,
    stack       TEXT,
    file        TEXT,
    line        INTEGER,
    col         INTEGER,
    PRIMARY KEY (run_id, stage, attempt, ord)
  );

  CREATE TABLE artifacts (
    run_id  INTEGER NOT NULL,
    stage   TEXT NOT NULL,
    path    TEXT NOT NULL,
    digest  TEXT NOT NULL,
    size    INTEGER NOT NULL,
    PRIMARY KEY (run_id, stage, path)
  );

  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 2: the tests a develop-loop run chose, and why (JSON TestImpact).
  `
  ALTER TABLE runs ADD COLUMN impact TEXT;
  `,
  // 3: releases, deployments and approvals.
  `
  CREATE TABLE releases (
    environment TEXT NOT NULL,
    number      INTEGER NOT NULL,
    digest      TEXT NOT NULL,
    body        TEXT NOT NULL,
    run_id      INTEGER,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (environment, number)
  );
  CREATE TABLE deployments (
    id           INTEGER PRIMARY KEY,
    environment  TEXT NOT NULL,
    from_release INTEGER,
    to_release   INTEGER NOT NULL,
    status       TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    run_id       INTEGER,
    queued_at    TEXT NOT NULL,
    finished_at  TEXT,
    body         TEXT NOT NULL
  );
  CREATE INDEX deployments_env ON deployments(environment, id);
  CREATE TABLE approvals (
    id            INTEGER PRIMARY KEY,
    deployment_id INTEGER NOT NULL,
    environment   TEXT NOT NULL,
    status        TEXT NOT NULL,
    body          TEXT NOT NULL
  );
  CREATE INDEX approvals_status ON approvals(status);
  ALTER TABLE artifacts ADD COLUMN kind TEXT NOT NULL DEFAULT 'file';
  CREATE TABLE previews (
    name      TEXT PRIMARY KEY,
    body      TEXT NOT NULL,
    destroyed INTEGER NOT NULL DEFAULT 0
  );
  `,
  // 4: monitoring. The commit time of runs (lead time); the environment of events (the timeline's
  // environment filter), filled in for the events already kept; the health events by environment
  // and time (time to restore); each stage's start and duration in milliseconds (the duration
  // trends read only this index, written with the same expressions); the runs by day.
  `
  ALTER TABLE runs ADD COLUMN commit_time TEXT;
  ALTER TABLE events ADD COLUMN environment TEXT;
  UPDATE events SET environment = CASE
      WHEN type = 'preview.created' THEN json_extract(body, '$.preview.name')
      WHEN type = 'preview.destroyed' THEN json_extract(body, '$.name')
      WHEN json_type(body, '$.environment') = 'text' THEN json_extract(body, '$.environment')
      ELSE (SELECT json_extract(j.value, '$.environment') FROM json_each(events.body) AS j
            WHERE j.type = 'object' AND json_type(j.value, '$.environment') = 'text' LIMIT 1)
    END
    WHERE type NOT IN ('log', 'stage.changed', 'step.changed', 'run.queued', 'run.started', 'run.finished', 'tests.reported', 'artifact.recorded');
  CREATE INDEX events_env ON events(environment, seq) WHERE environment IS NOT NULL;
  CREATE INDEX events_health ON events(environment, time) WHERE type = 'environment.health';
  CREATE INDEX runs_queued ON runs(queued_at, status);
  CREATE INDEX stages_durations ON stages(
    status,
    name,
    CAST(ROUND((julianday(started_at) - 2440587.5) * 86400000.0) AS INTEGER),
    CAST(ROUND((julianday(finished_at) - julianday(started_at)) * 86400000.0) AS INTEGER)
  );
  `,
  // 5: the matrix cell a stage is (which stage it belongs to, its combination), for run details.
  `
  ALTER TABLE stages ADD COLUMN matrix TEXT;
  `,
  // 6: the process groups of the steps that may be running, so that the agent started after a
  // crash can stop what its predecessor left. Written when a group starts, deleted once it is
  // killed; not derived from events. `identity` tells the group's leader from a later process
  // with the same pid (boot id and start time, from /proc), or is null where there is no /proc.
  `
  CREATE TABLE step_processes (
    pgid     INTEGER PRIMARY KEY,
    identity TEXT,
    run_id   INTEGER NOT NULL,
    stage    TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    idx      INTEGER NOT NULL
  );
  `,
];
