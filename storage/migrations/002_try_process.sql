-- dagd schema, version 2: the process group of a try that runs a command (bash), and the start key
-- of its leader ("<boot id>:<start time in clock ticks>"), so that a restarted daemon can stop a
-- try its predecessor left running before it starts the retry. Set while the try runs; kept on
-- the try's own row for the record. NULL: no command (transform, empty) or not started yet.
ALTER TABLE task_instance ADD COLUMN process_pgid integer, ADD COLUMN process_start_key text;
ALTER TABLE task_instance_try ADD COLUMN process_pgid integer, ADD COLUMN process_start_key text;
