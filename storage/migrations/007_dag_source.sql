-- dagd schema, version 6: where each DAG's latest version came from.
--
-- 'file': a file of the DAGs folder (fileloc is its path); 'api': uploaded through
-- PUT /api/v2/dags/{dag_id} (fileloc is empty). The folder sync marks only 'file' DAGs stale when
-- their file is gone; a file defining an uploaded DAG's id takes it over (source becomes 'file').

ALTER TABLE dag ADD COLUMN source text NOT NULL DEFAULT 'file' CHECK (source IN ('file', 'api'));
