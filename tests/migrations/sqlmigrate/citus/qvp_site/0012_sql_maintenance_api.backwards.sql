BEGIN;
--
-- Raw SQL operation
--

DROP FUNCTION IF EXISTS weekly_maintenance(timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS daily_maintenance(timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS qvp_maintain(boolean, timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS qvp_maintain_chunks(qvp_timeseries_table);
DROP FUNCTION IF EXISTS qvp_maintain_partitions(qvp_timeseries_table, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS qvp_drop_revisions_before(text, timestamptz);
DROP FUNCTION IF EXISTS qvp_range_partitions(regclass);
DROP FUNCTION IF EXISTS qvp_retention_in_force(text, text);
ALTER TABLE qvp_timeseries_table DROP COLUMN IF EXISTS retention_setting;

COMMIT;
