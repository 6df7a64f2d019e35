BEGIN;
--
-- Create model TimeSeriesTable
--
-- (no-op)
--
-- Create model TimeSeriesAggregate
--
-- (no-op)
--
-- Create model JobRun
--
DROP TABLE "qvp_site_jobrun" CASCADE;
--
-- Raw SQL operation
--

DROP FUNCTION IF EXISTS qvp_refuse_unpartitioned_row();
DROP FUNCTION IF EXISTS qvp_bucket_floor(interval, timestamptz);
DROP TABLE IF EXISTS qvp_timeseries_aggregate, qvp_timeseries_table;

--
-- Install the extensions (pgvector, and TimescaleDB where it is the engine)
--
DROP EXTENSION IF EXISTS vector;
COMMIT;
