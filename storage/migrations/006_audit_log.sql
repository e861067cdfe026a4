-- dagd schema, version 7: the audit log, one row per write through the API and per login attempt
-- (scheduler/audit.hpp), served as Airflow's eventLogs (EventLogResponse; `extra` is built from
-- method, path, status, remote_address, via and body when read).
--
-- Rows are only ever inserted, one statement per request. The API never stores a secret here:
-- `body` is a bounded summary with passwords, tokens and conf values redacted (api router.hpp).

CREATE TABLE audit_log (
  id             bigserial PRIMARY KEY,
  dttm           timestamptz NOT NULL,
  event          text NOT NULL,
  owner          text,
  via            text NOT NULL DEFAULT '',
  dag_id         text,
  run_id         text,
  task_id        text,
  map_index      integer,
  try_number     integer,
  logical_date   timestamptz,
  method         text NOT NULL,
  path           text NOT NULL,
  status         integer NOT NULL,
  remote_address text NOT NULL,
  body           jsonb NOT NULL DEFAULT '{}'
);

-- Listings filter on time (before/after) and on a DAG, newest or oldest first.
CREATE INDEX audit_log_dttm_idx ON audit_log (dttm);
CREATE INDEX audit_log_dag_idx ON audit_log (dag_id, dttm) WHERE dag_id IS NOT NULL;
