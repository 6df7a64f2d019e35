BEGIN;
--
-- Raw SQL operation
--
ALTER TABLE qvp_timeseries_aggregate ADD COLUMN IF NOT EXISTS pending_from timestamptz, ADD COLUMN IF NOT EXISTS pending_to timestamptz;
COMMIT;
