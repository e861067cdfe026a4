-- dagd schema, version 9: backfills (Airflow 3's backfill and backfill_dag_run tables).
--
-- A backfill creates (or re-runs) one run per logical date of its DAG's timetable in
-- [from_date, to_date]; backfill_dag_run records, per date in sort order, the run it owns or why
-- it made none (exception_reason: "already exists", "in flight"). A backfill is active until
-- completed_at is set: when all its runs ended, or when it is cancelled. dag_run.backfill_id
-- names the backfill that owns a run (NULL for the others).

CREATE TABLE backfill (
  id                   bigserial PRIMARY KEY,
  dag_id               text NOT NULL REFERENCES dag (dag_id) ON DELETE CASCADE,
  from_date            timestamptz NOT NULL,
  to_date              timestamptz NOT NULL,
  dag_run_conf         jsonb NOT NULL DEFAULT '{}',
  is_paused            boolean NOT NULL DEFAULT false,
  reprocess_behavior   text NOT NULL DEFAULT 'none',
  max_active_runs      integer NOT NULL DEFAULT 10,
  created_at           timestamptz NOT NULL DEFAULT now(),
  completed_at         timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  triggering_user_name text
);
CREATE INDEX backfill_dag_idx ON backfill (dag_id, id);
-- At most one active backfill per DAG, whoever writes.
CREATE UNIQUE INDEX backfill_one_active_per_dag ON backfill (dag_id) WHERE completed_at IS NULL;

CREATE TABLE backfill_dag_run (
  id               bigserial PRIMARY KEY,
  backfill_id      bigint NOT NULL REFERENCES backfill (id) ON DELETE CASCADE,
  dag_run_id       bigint REFERENCES dag_run (id) ON DELETE SET NULL,
  exception_reason text,
  logical_date     timestamptz,
  sort_ordinal     integer NOT NULL CHECK (sort_ordinal >= 1),
  UNIQUE (backfill_id, dag_run_id)
);

ALTER TABLE dag_run ADD COLUMN backfill_id bigint REFERENCES backfill (id) ON DELETE SET NULL;
CREATE INDEX dag_run_backfill_idx ON dag_run (backfill_id, state) WHERE backfill_id IS NOT NULL;
