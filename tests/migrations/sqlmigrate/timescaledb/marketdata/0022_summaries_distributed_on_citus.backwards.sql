BEGIN;
--
-- On Citus, distribute the summaries of MinuteBar beside it
--
-- (no-op)
COMMIT;
