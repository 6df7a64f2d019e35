BEGIN;
--
-- Raw SQL operation
--
ALTER TABLE qvp_timeseries_aggregate DROP COLUMN IF EXISTS pending_from, DROP COLUMN IF EXISTS pending_to;
COMMIT;
