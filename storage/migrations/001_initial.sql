-- dagd schema, version 1. Applied by PgStateStore::Open inside one transaction holding an
-- advisory lock; recorded in schema_migration. State columns hold Airflow's spelling; a task
-- instance's "none" state is NULL.

-- Exact conversions between timestamptz and microseconds since the Unix epoch (the store's
-- TimePoint), so no value ever goes through text or a double. NULL in, NULL out.
CREATE FUNCTION dagd_us(t timestamptz) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT (extract(epoch FROM t) * 1000000)::bigint $$;

CREATE FUNCTION dagd_ts(us bigint) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT timestamptz '1970-01-01 00:00:00+00' + (us / 1000000) * interval '1 second'
                                                     + (us % 1000000) * interval '1 microsecond' $$;

-- RFC 3339 text in UTC for event payloads ("2026-01-02T03:04:05.123456Z").
CREATE FUNCTION dagd_rfc3339(t timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

CREATE TABLE dag (
  dag_id           text PRIMARY KEY,
  is_paused        boolean NOT NULL DEFAULT false,
  is_stale         boolean NOT NULL DEFAULT false,
  fileloc          text NOT NULL DEFAULT '',
  last_parsed_time timestamptz,
  description      text NOT NULL DEFAULT '',
  tags             text[] NOT NULL DEFAULT '{}',
  owners           text[] NOT NULL DEFAULT '{}',
  schedule         text,
  max_active_runs  integer NOT NULL DEFAULT 16,
  max_active_tasks integer NOT NULL DEFAULT 16,
  latest_version   integer NOT NULL DEFAULT 0
);
CREATE INDEX dag_tags_idx ON dag USING gin (tags);

-- Immutable versions. No unique (dag_id, hash): a document may change back to an older text, and
-- that is a new version; SyncDag compares with the latest version only.
CREATE TABLE dag_version (
  dag_id         text NOT NULL REFERENCES dag (dag_id) ON DELETE CASCADE,
  version_number integer NOT NULL,
  hash           text NOT NULL,
  document       text NOT NULL,  -- kept byte for byte: its hash is over this text
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (dag_id, version_number)
);

CREATE TABLE dag_run (
  id                       bigserial PRIMARY KEY,
  dag_id                   text NOT NULL REFERENCES dag (dag_id) ON DELETE CASCADE,
  run_id                   text NOT NULL,
  version_number           integer NOT NULL,
  state                    text NOT NULL,
  run_type                 text NOT NULL,
  logical_date             timestamptz,
  queued_at                timestamptz,
  start_date               timestamptz,
  end_date                 timestamptz,
  data_interval_start      timestamptz,
  data_interval_end        timestamptz,
  run_after                timestamptz,
  last_scheduling_decision timestamptz,
  conf                     jsonb NOT NULL DEFAULT '{}',
  note                     text,
  triggered_by             text NOT NULL DEFAULT 'rest_api',
  UNIQUE (dag_id, run_id)
);
CREATE INDEX dag_run_state_idx ON dag_run (state, queued_at, id);
CREATE INDEX dag_run_dag_logical_date_idx ON dag_run (dag_id, logical_date);

CREATE TABLE task_instance (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  dag_run_id      bigint NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
  dag_id          text NOT NULL,
  run_id          text NOT NULL,
  task_id         text NOT NULL,
  version_number  integer NOT NULL,
  state           text,  -- NULL: Airflow's "none", not yet scheduled
  try_number      integer NOT NULL DEFAULT 0,
  max_tries       integer NOT NULL DEFAULT 0,
  scheduled_when  timestamptz,
  queued_when     timestamptz,
  start_date      timestamptz,
  end_date        timestamptz,
  duration        double precision,
  next_retry_at   timestamptz,
  hostname        text NOT NULL DEFAULT '',
  unixname        text NOT NULL DEFAULT '',
  pid             integer,
  operator        text NOT NULL DEFAULT '',
  pool            text NOT NULL DEFAULT 'default_pool',
  pool_slots      integer NOT NULL DEFAULT 1,
  priority_weight integer NOT NULL DEFAULT 1,
  note            text,
  UNIQUE (dag_run_id, task_id)
);
CREATE INDEX task_instance_dag_run_idx ON task_instance (dag_id, run_id, task_id);
CREATE INDEX task_instance_state_idx ON task_instance (state) WHERE state IS NOT NULL;

CREATE TABLE task_instance_try (
  ti_id       uuid NOT NULL REFERENCES task_instance (id) ON DELETE CASCADE,
  try_number  integer NOT NULL,
  state       text,
  queued_when timestamptz,
  start_date  timestamptz,
  end_date    timestamptz,
  duration    double precision,
  hostname    text NOT NULL DEFAULT '',
  pid         integer,
  operator    text NOT NULL DEFAULT '',
  PRIMARY KEY (ti_id, try_number)
);

CREATE TABLE xcom (
  ti_id uuid NOT NULL REFERENCES task_instance (id) ON DELETE CASCADE,
  key   text NOT NULL,
  value jsonb,
  PRIMARY KEY (ti_id, key)
);

-- The monotonic log of every run and task transition: audit trail, event-stream source, outbox.
CREATE TABLE event (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind        text NOT NULL CHECK (kind IN ('dag_run', 'task_instance')),
  dag_id      text NOT NULL,
  run_id      text NOT NULL,
  task_id     text,  -- NULL for dag_run events
  try_number  integer,
  state       text,
  payload     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX event_run_idx ON event (dag_id, run_id, id);

CREATE TABLE import_error (
  id        bigserial PRIMARY KEY,
  filename  text NOT NULL,
  message   text NOT NULL,
  timestamp timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX import_error_filename_idx ON import_error (filename);
