-- dagd schema, version 8: scheduled runs.
--
-- A DAG has at most one run per logical date (as Airflow's dag_run_dag_id_logical_date_key), so
-- that no restart, clock jump or second process creates a scheduled run twice: the second insert
-- finds the key taken. Runs without a logical date (manual runs triggered without one) are not
-- constrained: NULLs are distinct.
--
-- The dag row gains what the API shows about the schedule, as Airflow's dag table holds it:
-- timetable_description (written with each version, from the parsed timetable) and the next run
-- the scheduler will create (next_dagrun = its logical date, next_dagrun_create_after = its
-- run_after), written by the scheduler as it plans; NULL when no run is left to create.

DO $$
DECLARE
  taken record;
BEGIN
  SELECT dag_id, logical_date, count(*) AS runs INTO taken FROM dag_run
  WHERE logical_date IS NOT NULL GROUP BY dag_id, logical_date HAVING count(*) > 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'DAG % has % runs with logical date %: a DAG may have one run per logical '
      'date from this version on; delete or re-date all but one of them, then start dagd again',
      taken.dag_id, taken.runs, taken.logical_date;
  END IF;
END $$;

DROP INDEX dag_run_dag_logical_date_idx;
ALTER TABLE dag_run ADD CONSTRAINT dag_run_dag_id_logical_date_key UNIQUE (dag_id, logical_date);

ALTER TABLE dag
  ADD COLUMN timetable_description text,
  ADD COLUMN next_dagrun timestamptz,
  ADD COLUMN next_dagrun_data_interval_start timestamptz,
  ADD COLUMN next_dagrun_data_interval_end timestamptz,
  ADD COLUMN next_dagrun_create_after timestamptz;
