-- dagd schema, version 3: a commit-ordered event log written by the database itself, change
-- notifications, scheduler epochs with a lease (fencing), and dagd_apply, the one statement that
-- writes a batch of conditional transitions.
--
-- The contract for every writer of dag_run and task_instance (dagd, another dagd, psql):
-- * Triggers on dag_run and task_instance append one `event` row per inserted row and per updated
--   row whose state (or, for a task instance, try_number) changed, in the same transaction. A
--   writer never inserts into `event` itself.
-- * event.seq is gap-free and in commit order: each event-writing transaction takes the one row
--   of event_counter (row lock held until it ends) before numbering its events, so such
--   transactions commit one after the other from that point, and a rollback returns its numbers.
--   A reader that has seen seq N never sees an event <= N commit later.
-- * The same transaction notifies channel 'dagd_change' (delivered at commit) with the writer's
--   origin as payload: the setting dagd.origin (a scheduler epoch; dagd_apply sets it for its own
--   transaction), '' for any other writer. event.origin holds the same value (NULL: other writer).
-- * A scheduler writes transitions only through dagd_apply with the epoch that scheduler_lease
--   names; a scheduler whose epoch was replaced is refused (SQLSTATE DGD01, "fenced").

ALTER TABLE task_instance ADD COLUMN owner_epoch bigint;
ALTER TABLE task_instance_try ADD COLUMN owner_epoch bigint;

-- Transitions change state, dates and hosts but no indexed column, so with room on the page
-- PostgreSQL updates a task instance in place (HOT), without touching its four indexes: the
-- state index goes (lists by state scan one run's rows, or all of them), and pages keep 20 %
-- free for the new row versions.
DROP INDEX task_instance_state_idx;
ALTER TABLE task_instance SET (fillfactor = 80);

-- --- The event log -------------------------------------------------------------------------------

ALTER TABLE event ADD COLUMN seq bigint, ADD COLUMN run_key bigint, ADD COLUMN ti_id uuid,
  ADD COLUMN origin bigint;
UPDATE event e SET seq = n.seq
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM event) AS n WHERE n.id = e.id;
UPDATE event e SET run_key = r.id FROM dag_run r
  WHERE r.dag_id = e.dag_id AND r.run_id = e.run_id;
UPDATE event SET ti_id = (payload ->> 'ti_id')::uuid WHERE payload ? 'ti_id';
DROP INDEX event_run_idx;
ALTER TABLE event DROP COLUMN id;
ALTER TABLE event ALTER COLUMN seq SET NOT NULL, ADD PRIMARY KEY (seq);
CREATE INDEX event_run_idx ON event (run_key, seq);

CREATE TABLE event_counter (
  one  boolean PRIMARY KEY DEFAULT true CHECK (one),
  last bigint NOT NULL
);
INSERT INTO event_counter (last) SELECT coalesce(max(seq), 0) FROM event;

-- The triggers below number the events of one statement's changed rows from the counter (in id
-- order within the statement) and notify once the statement wrote any. An update trigger pairs
-- the old and new rows by id. Its plan is made once per session, sized by the transition tables
-- of the first call: after a first update of no row (dagd_apply sends such statements) the
-- planner chose a nested loop for good, and a 1,000-row batch cost a million comparisons (80 ms);
-- enable_nestloop = off keeps the pairing a hash or merge join, linear. The penalty that disables
-- a plan kind also lifts the plan's cost over jit_above_cost, and compiling would take longer
-- than running: jit = off.
CREATE FUNCTION dagd_notify_change() RETURNS void
  LANGUAGE sql VOLATILE
  AS $$ SELECT pg_notify('dagd_change', coalesce(current_setting('dagd.origin', true), '')) $$;

CREATE FUNCTION dagd_dag_run_events() RETURNS trigger
  LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_nestloop = off SET jit = off
  AS $$
DECLARE
  v_origin bigint := nullif(current_setting('dagd.origin', true), '')::bigint;
  v_count bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    WITH ch AS MATERIALIZED (
      SELECT n.*, row_number() OVER (ORDER BY n.id) AS rn FROM dagd_new n),
    c AS (
      UPDATE event_counter SET last = last + (SELECT count(*) FROM ch)
      WHERE EXISTS (SELECT 1 FROM ch)
      RETURNING last - (SELECT count(*) FROM ch) AS base)
    INSERT INTO event (seq, kind, run_key, dag_id, run_id, state, origin, payload)
    SELECT c.base + ch.rn, 'dag_run', ch.id, ch.dag_id, ch.run_id, ch.state, v_origin,
      jsonb_build_object('run_type', ch.run_type, 'version_number', ch.version_number,
        'logical_date', dagd_rfc3339(ch.logical_date))
    FROM c, ch;
  ELSE
    WITH ch AS MATERIALIZED (
      SELECT n.*, row_number() OVER (ORDER BY n.id) AS rn
      FROM dagd_new n JOIN dagd_old o ON o.id = n.id
      WHERE n.state IS DISTINCT FROM o.state),
    c AS (
      UPDATE event_counter SET last = last + (SELECT count(*) FROM ch)
      WHERE EXISTS (SELECT 1 FROM ch)
      RETURNING last - (SELECT count(*) FROM ch) AS base)
    INSERT INTO event (seq, kind, run_key, dag_id, run_id, state, origin, payload)
    SELECT c.base + ch.rn, 'dag_run', ch.id, ch.dag_id, ch.run_id, ch.state, v_origin,
      jsonb_build_object('run_type', ch.run_type, 'start_date', dagd_rfc3339(ch.start_date),
        'end_date', dagd_rfc3339(ch.end_date))
    FROM c, ch;
  END IF;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count > 0 THEN PERFORM dagd_notify_change(); END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dagd_task_instance_events() RETURNS trigger
  LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_nestloop = off SET jit = off
  AS $$
DECLARE
  v_origin bigint := nullif(current_setting('dagd.origin', true), '')::bigint;
  v_count bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    WITH ch AS MATERIALIZED (
      SELECT n.*, row_number() OVER (ORDER BY n.id) AS rn FROM dagd_new n),
    c AS (
      UPDATE event_counter SET last = last + (SELECT count(*) FROM ch)
      WHERE EXISTS (SELECT 1 FROM ch)
      RETURNING last - (SELECT count(*) FROM ch) AS base)
    INSERT INTO event (seq, kind, run_key, dag_id, run_id, task_id, ti_id, try_number, state,
                       origin, payload)
    SELECT c.base + ch.rn, 'task_instance', ch.dag_run_id, ch.dag_id, ch.run_id, ch.task_id,
      ch.id, ch.try_number, ch.state, v_origin,
      jsonb_build_object('ti_id', ch.id, 'max_tries', ch.max_tries,
        'start_date', dagd_rfc3339(ch.start_date), 'end_date', dagd_rfc3339(ch.end_date),
        'duration', ch.duration, 'hostname', ch.hostname)
    FROM c, ch;
  ELSE
    WITH ch AS MATERIALIZED (
      SELECT n.*, row_number() OVER (ORDER BY n.id) AS rn
      FROM dagd_new n JOIN dagd_old o ON o.id = n.id
      WHERE n.state IS DISTINCT FROM o.state OR n.try_number <> o.try_number),
    c AS (
      UPDATE event_counter SET last = last + (SELECT count(*) FROM ch)
      WHERE EXISTS (SELECT 1 FROM ch)
      RETURNING last - (SELECT count(*) FROM ch) AS base)
    INSERT INTO event (seq, kind, run_key, dag_id, run_id, task_id, ti_id, try_number, state,
                       origin, payload)
    SELECT c.base + ch.rn, 'task_instance', ch.dag_run_id, ch.dag_id, ch.run_id, ch.task_id,
      ch.id, ch.try_number, ch.state, v_origin,
      jsonb_build_object('ti_id', ch.id, 'max_tries', ch.max_tries,
        'start_date', dagd_rfc3339(ch.start_date), 'end_date', dagd_rfc3339(ch.end_date),
        'duration', ch.duration, 'hostname', ch.hostname)
    FROM c, ch;
  END IF;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count > 0 THEN PERFORM dagd_notify_change(); END IF;
  RETURN NULL;
END $$;

-- A trigger with transition tables serves one event: INSERT and UPDATE each have their own.
CREATE TRIGGER dag_run_insert_events AFTER INSERT ON dag_run
  REFERENCING NEW TABLE AS dagd_new FOR EACH STATEMENT EXECUTE FUNCTION dagd_dag_run_events();
CREATE TRIGGER dag_run_update_events AFTER UPDATE ON dag_run
  REFERENCING OLD TABLE AS dagd_old NEW TABLE AS dagd_new
  FOR EACH STATEMENT EXECUTE FUNCTION dagd_dag_run_events();
CREATE TRIGGER task_instance_insert_events AFTER INSERT ON task_instance
  REFERENCING NEW TABLE AS dagd_new
  FOR EACH STATEMENT EXECUTE FUNCTION dagd_task_instance_events();
CREATE TRIGGER task_instance_update_events AFTER UPDATE ON task_instance
  REFERENCING OLD TABLE AS dagd_old NEW TABLE AS dagd_new
  FOR EACH STATEMENT EXECUTE FUNCTION dagd_task_instance_events();

-- The time conversions of migration 001 were declared IMMUTABLE, but timestamptz arithmetic is
-- STABLE: PostgreSQL then refuses to inline them and runs each call as a query of its own (most
-- of a batch statement's time). STABLE is what they are, and lets them inline.
ALTER FUNCTION dagd_ts(bigint) STABLE;
ALTER FUNCTION dagd_us(timestamptz) STABLE;
ALTER FUNCTION dagd_rfc3339(timestamptz) STABLE;

-- --- Scheduler epochs and the lease --------------------------------------------------------------

-- One row per scheduler start (AcquireSchedulerLock): who it was.
CREATE TABLE scheduler_epoch (
  epoch      bigserial PRIMARY KEY,
  hostname   text NOT NULL,
  pid        integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The one epoch allowed to write transitions. dagd_apply share-locks this row, so a takeover
-- (UPDATE) waits for the batches in flight and every later batch of the old epoch is refused.
CREATE TABLE scheduler_lease (
  one   boolean PRIMARY KEY DEFAULT true CHECK (one),
  epoch bigint REFERENCES scheduler_epoch (epoch)
);
INSERT INTO scheduler_lease (epoch) VALUES (NULL);

-- --- dagd_apply ----------------------------------------------------------------------------------

-- One element of dagd_apply's p_tis / p_runs (JSON arrays of objects with these keys). Times are
-- bigint microseconds since the Unix epoch (dagd_ts). kind: queue, start, finish, settle for task
-- instances; start, finish for runs.
CREATE TYPE dagd_ti_change AS (
  kind text, id uuid, run_key bigint, expect_state text, expect_try integer, expect_epoch bigint,
  state text, try_number integer, max_tries integer, scheduled_when bigint, queued_when bigint,
  start_date bigint, end_date bigint, duration double precision, next_retry_at bigint,
  hostname text, unixname text, pid integer, process_pgid integer, process_start_key text);

CREATE TYPE dagd_run_change AS (
  kind text, id bigint, expect_state text, state text, start_date bigint, end_date bigint,
  last_scheduling_decision bigint);

-- plan_cache_mode: each statement below is planned once per session, not at every call (custom
-- plans for array arguments cost more to make than to run); the generic plans join the batch to
-- the tables by primary key whatever its size.
--
-- Writes a batch of conditional transitions as scheduler epoch p_epoch, in the caller's
-- transaction; returns the keys of the runs it did not write (see ApplyResult in
-- scheduler/include/dagd/scheduler/ports.hpp). p_xcoms: [{run_key, ti_id, key, value}], at most
-- one per (ti_id, key). At most one element per task instance and per run.
CREATE FUNCTION dagd_apply(p_epoch bigint, p_runs json, p_tis json, p_xcoms json)
  RETURNS bigint[]
  LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_runs dagd_run_change[] := '{}';
  v_tis dagd_ti_change[] := '{}';
  v_finish_ids bigint[] := '{}';
  v_conflicts bigint[] := '{}';
  v_holder record;
BEGIN
  PERFORM set_config('dagd.origin', p_epoch::text, true)
    FROM scheduler_lease WHERE epoch = p_epoch FOR SHARE;
  IF NOT FOUND THEN
    SELECT l.epoch, e.hostname, e.pid INTO v_holder
      FROM scheduler_lease l LEFT JOIN scheduler_epoch e ON e.epoch = l.epoch;
    RAISE EXCEPTION 'fenced: another scheduler (epoch %, host % pid %) took over',
      coalesce(v_holder.epoch::text, 'none'), coalesce(v_holder.hostname, '?'),
      coalesce(v_holder.pid::text, '?')
      USING ERRCODE = 'DGD01';
  END IF;
  IF json_array_length(p_runs) > 0 THEN
    v_runs := ARRAY(SELECT json_populate_recordset(NULL::dagd_run_change, p_runs));
    v_finish_ids := ARRAY(SELECT r.id FROM unnest(v_runs) r WHERE r.kind = 'finish');
  END IF;
  IF json_array_length(p_tis) > 0 THEN
    v_tis := ARRAY(SELECT json_populate_recordset(NULL::dagd_ti_change, p_tis));
  END IF;

  -- Lock what the expectations are about (task instances, then runs, each in id order, as every
  -- dagd_apply does: no deadlock between two of them), then compare with the latest committed
  -- rows. A run to finish also locks all its task instances, so the finish guard reads rows no
  -- one can change before this commits.
  IF cardinality(v_tis) > 0 OR cardinality(v_finish_ids) > 0 THEN
    PERFORM 1 FROM task_instance t
      WHERE t.id IN (SELECT x.id FROM unnest(v_tis) x
                     UNION ALL
                     SELECT f.id FROM task_instance f WHERE f.dag_run_id = ANY (v_finish_ids))
      ORDER BY t.id FOR UPDATE;
  END IF;
  IF cardinality(v_runs) > 0 THEN
    PERFORM 1 FROM dag_run d WHERE d.id IN (SELECT r.id FROM unnest(v_runs) r)
      ORDER BY d.id FOR UPDATE;
  END IF;
  v_conflicts := ARRAY(
    SELECT x.run_key FROM unnest(v_tis) x LEFT JOIN task_instance t ON t.id = x.id
     WHERE t.id IS NULL OR t.dag_run_id IS DISTINCT FROM x.run_key
        OR t.state IS DISTINCT FROM x.expect_state OR t.try_number IS DISTINCT FROM x.expect_try
        OR t.owner_epoch IS DISTINCT FROM x.expect_epoch
    UNION
    SELECT r.id FROM unnest(v_runs) r LEFT JOIN dag_run d ON d.id = r.id
     WHERE d.id IS NULL OR d.state IS DISTINCT FROM r.expect_state);

  -- Each statement below fires the event triggers once: runs that start, then task instances,
  -- then runs that end, in seq order.
  IF cardinality(v_runs) > cardinality(v_finish_ids) THEN
    UPDATE dag_run d SET state = r.state, start_date = dagd_ts(r.start_date),
        last_scheduling_decision = dagd_ts(r.last_scheduling_decision)
      FROM unnest(v_runs) r
      WHERE r.kind = 'start' AND d.id = r.id AND r.id <> ALL (v_conflicts);
  END IF;

  -- A try that started and ended within one batch (a kFinish from queued that has a start) is
  -- first set running, so that the event log shows every state a try went through. Checked on
  -- the array first: the UPDATE (and its event trigger) costs as much with no row to write.
  IF EXISTS (SELECT 1 FROM unnest(v_tis) x
             WHERE x.kind = 'finish' AND x.expect_state = 'queued' AND x.start_date IS NOT NULL)
  THEN
    UPDATE task_instance t SET state = 'running', start_date = dagd_ts(x.start_date),
        hostname = x.hostname, unixname = x.unixname, pid = x.pid,
        process_pgid = x.process_pgid, process_start_key = x.process_start_key
      FROM unnest(v_tis) x
      WHERE x.kind = 'finish' AND x.expect_state = 'queued' AND x.start_date IS NOT NULL
        AND t.id = x.id AND x.run_key <> ALL (v_conflicts);
  END IF;

  -- Every try a worker runs has its row in task_instance_try, written with each transition. A
  -- settled task never ran (skipped, upstream_failed, an `empty` task's success): no try row;
  -- its current try, if it has a number, is the task instance itself (ListTries shows it).
  IF cardinality(v_tis) > 0 THEN
    WITH tu AS (
      UPDATE task_instance t SET
        state = x.state,
        try_number = CASE WHEN x.kind IN ('queue', 'settle') THEN x.try_number
                          ELSE t.try_number END,
        max_tries = CASE x.kind WHEN 'finish' THEN x.max_tries ELSE t.max_tries END,
        scheduled_when = CASE x.kind WHEN 'queue' THEN dagd_ts(x.scheduled_when)
                                     ELSE t.scheduled_when END,
        queued_when = CASE x.kind WHEN 'queue' THEN dagd_ts(x.queued_when)
                                  ELSE t.queued_when END,
        start_date = CASE x.kind WHEN 'queue' THEN NULL
                                 WHEN 'finish' THEN coalesce(t.start_date, dagd_ts(x.start_date))
                                 ELSE dagd_ts(x.start_date) END,
        end_date = CASE WHEN x.kind = 'queue' THEN NULL
                        WHEN x.kind IN ('finish', 'settle') THEN dagd_ts(x.end_date)
                        ELSE t.end_date END,
        duration = CASE WHEN x.kind = 'queue' THEN NULL
                        WHEN x.kind IN ('finish', 'settle') THEN x.duration
                        ELSE t.duration END,
        next_retry_at = CASE x.kind WHEN 'queue' THEN NULL
                                    WHEN 'finish' THEN dagd_ts(x.next_retry_at)
                                    ELSE t.next_retry_at END,
        hostname = CASE WHEN x.kind = 'queue' THEN ''
                        WHEN x.kind = 'start' OR x.kind = 'finish' AND x.expect_state = 'queued'
                          THEN x.hostname
                        ELSE t.hostname END,
        unixname = CASE WHEN x.kind = 'start' OR x.kind = 'finish' AND x.expect_state = 'queued'
                          THEN x.unixname
                        ELSE t.unixname END,
        pid = CASE WHEN x.kind = 'queue' THEN NULL
                   WHEN x.kind = 'start' OR x.kind = 'finish' AND x.expect_state = 'queued'
                     THEN x.pid
                   ELSE t.pid END,
        process_pgid = CASE WHEN x.kind = 'queue' THEN NULL
                            WHEN x.kind = 'start' OR x.kind = 'finish' AND x.expect_state = 'queued'
                              THEN x.process_pgid
                            ELSE t.process_pgid END,
        process_start_key = CASE WHEN x.kind = 'queue' THEN NULL
                                 WHEN x.kind = 'start'
                                      OR x.kind = 'finish' AND x.expect_state = 'queued'
                                   THEN x.process_start_key
                                 ELSE t.process_start_key END,
        owner_epoch = CASE x.kind WHEN 'queue' THEN p_epoch ELSE t.owner_epoch END
      FROM unnest(v_tis) x
      WHERE t.id = x.id AND x.run_key <> ALL (v_conflicts)
      RETURNING t.*, x.kind AS change_kind)
    INSERT INTO task_instance_try AS old (ti_id, try_number, state, queued_when, start_date,
      end_date, duration, hostname, pid, operator, process_pgid, process_start_key, owner_epoch)
    SELECT tu.id, tu.try_number, tu.state, tu.queued_when, tu.start_date, tu.end_date,
      tu.duration, tu.hostname, tu.pid, tu.operator, tu.process_pgid, tu.process_start_key,
      tu.owner_epoch
    FROM tu WHERE tu.try_number > 0 AND tu.change_kind <> 'settle'
    ON CONFLICT (ti_id, try_number) DO UPDATE SET state = excluded.state,
      queued_when = excluded.queued_when, start_date = excluded.start_date,
      end_date = excluded.end_date, duration = excluded.duration, hostname = excluded.hostname,
      pid = excluded.pid, operator = excluded.operator, process_pgid = excluded.process_pgid,
      process_start_key = excluded.process_start_key, owner_epoch = excluded.owner_epoch;
  END IF;

  IF json_array_length(p_xcoms) > 0 THEN
    INSERT INTO xcom (ti_id, key, value)
    SELECT x.ti_id, x.key, x.value
    FROM json_to_recordset(p_xcoms) AS x(run_key bigint, ti_id uuid, key text, value jsonb)
    WHERE x.run_key <> ALL (v_conflicts)
    ON CONFLICT (ti_id, key) DO UPDATE SET value = excluded.value;
  END IF;

  IF cardinality(v_finish_ids) > 0 THEN
    WITH f AS (
      UPDATE dag_run d SET state = r.state, end_date = dagd_ts(r.end_date),
          last_scheduling_decision = dagd_ts(r.last_scheduling_decision),
          start_date = coalesce(d.start_date, dagd_ts(r.start_date))
        FROM unnest(v_runs) r
        WHERE r.kind = 'finish' AND d.id = r.id AND r.id <> ALL (v_conflicts)
          AND NOT EXISTS (
            SELECT 1 FROM task_instance t
            WHERE t.dag_run_id = d.id
              AND (t.state IS NULL OR t.state NOT IN ('success', 'failed', 'skipped',
                                                      'upstream_failed', 'removed')))
        RETURNING d.id)
    SELECT v_conflicts || ARRAY(
      SELECT id FROM unnest(v_finish_ids) AS u(id)
      WHERE id <> ALL (v_conflicts) AND id NOT IN (SELECT f.id FROM f))
    INTO v_conflicts;
  END IF;
  RETURN v_conflicts;
END $$;
