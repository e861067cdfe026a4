-- dagd schema, version 4: the event log records transitions only.
--
-- A task instance is created without a state (its run's tasks, all at once): that is not a
-- transition, and writing an event for each made a trigger of a 10-task DAG write 11 events where
-- 1 says what happened (the run was queued; its task instances exist from that moment). Inserted
-- task instances that already have a state (a writer that creates one settled or queued) still
-- get their event. Updates are unchanged: one event per row whose state or try number changed.

CREATE OR REPLACE FUNCTION dagd_task_instance_events() RETURNS trigger
  LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_nestloop = off SET jit = off
  AS $$
DECLARE
  v_origin bigint := nullif(current_setting('dagd.origin', true), '')::bigint;
  v_count bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    WITH ch AS MATERIALIZED (
      SELECT n.*, row_number() OVER (ORDER BY n.id) AS rn FROM dagd_new n
      WHERE n.state IS NOT NULL),
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
