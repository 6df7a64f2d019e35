BEGIN;
--
-- Create hypertable Signal on ts in chunks of 7 days
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('signals_signal', 'ts', '7 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'signals_signal') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"signals_signal"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'signals_signal', qvp_constraint);
    END LOOP;
    ALTER TABLE "signals_signal" ADD CONSTRAINT "signals_signal_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"signals_signal"'::regclass, by_range('ts', '7 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable FusedSignal on ts in chunks of 30 days
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('signals_fusedsignal', 'ts', '30 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'signals_fusedsignal') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"signals_fusedsignal"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'signals_fusedsignal', qvp_constraint);
    END LOOP;
    ALTER TABLE "signals_fusedsignal" ADD CONSTRAINT "signals_fusedsignal_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"signals_fusedsignal"'::regclass, by_range('ts', '30 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable NewsArticle on ts in chunks of 30 days
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('signals_newsarticle', 'ts', '30 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'signals_newsarticle') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"signals_newsarticle"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'signals_newsarticle', qvp_constraint);
    END LOOP;
    ALTER TABLE "signals_newsarticle" ADD CONSTRAINT "signals_newsarticle_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"signals_newsarticle"'::regclass, by_range('ts', '30 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable SocialSentiment on ts in chunks of 7 days
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('signals_socialsentiment', 'ts', '7 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'signals_socialsentiment') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"signals_socialsentiment"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'signals_socialsentiment', qvp_constraint);
    END LOOP;
    ALTER TABLE "signals_socialsentiment" ADD CONSTRAINT "signals_socialsentiment_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"signals_socialsentiment"'::regclass, by_range('ts', '7 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable AlternativeData on ts in chunks of 30 days
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('signals_alternativedata', 'ts', '30 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'signals_alternativedata') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"signals_alternativedata"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'signals_alternativedata', qvp_constraint);
    END LOOP;
    ALTER TABLE "signals_alternativedata" ADD CONSTRAINT "signals_alternativedata_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"signals_alternativedata"'::regclass, by_range('ts', '30 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable AgentMetric on ts in chunks of 7 days
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('signals_agentmetric', 'ts', '7 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'signals_agentmetric') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"signals_agentmetric"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'signals_agentmetric', qvp_constraint);
    END LOOP;
    ALTER TABLE "signals_agentmetric" ADD CONSTRAINT "signals_agentmetric_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"signals_agentmetric"'::regclass, by_range('ts', '7 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable SystemLog on ts in chunks of 1 day
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('signals_systemlog', 'ts', '1 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'signals_systemlog') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"signals_systemlog"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'signals_systemlog', qvp_constraint);
    END LOOP;
    ALTER TABLE "signals_systemlog" ADD CONSTRAINT "signals_systemlog_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"signals_systemlog"'::regclass, by_range('ts', '1 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Compress Signal chunks older than 30 days
--
UPDATE qvp_timeseries_table SET compress_after = '30 days', compress_segment_by = '{agent_id}', compress_order_by = 'ts DESC, id' WHERE table_name = 'signals_signal';
ALTER TABLE "signals_signal" SET (timescaledb.compress, timescaledb.compress_segmentby = 'agent_id', timescaledb.compress_orderby = 'ts DESC, id');
SELECT add_compression_policy('"signals_signal"'::regclass, '30 days'::interval, if_not_exists => true);
--
-- Compress SystemLog chunks older than 7 days
--
UPDATE qvp_timeseries_table SET compress_after = '7 days', compress_segment_by = '{}', compress_order_by = 'ts DESC, id' WHERE table_name = 'signals_systemlog';
ALTER TABLE "signals_systemlog" SET (timescaledb.compress, timescaledb.compress_orderby = 'ts DESC, id');
SELECT add_compression_policy('"signals_systemlog"'::regclass, '7 days'::interval, if_not_exists => true);
--
-- Drop SystemLog chunks older than 90 days
--
UPDATE qvp_timeseries_table SET retention_default = '90 days' WHERE table_name = 'signals_systemlog';
DO $qvp$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_retention' AND hypertable_name = 'signals_systemlog'
          AND (config->>'drop_after')::interval = '90 days'::interval
    ) THEN
        PERFORM remove_retention_policy('"signals_systemlog"'::regclass, if_exists => true);
        PERFORM add_retention_policy('"signals_systemlog"'::regclass, drop_after => '90 days'::interval);
    END IF;
END
$qvp$;
--
-- Drop NewsArticle chunks older than 1 year
--
UPDATE qvp_timeseries_table SET retention_default = '1 year' WHERE table_name = 'signals_newsarticle';
DO $qvp$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_retention' AND hypertable_name = 'signals_newsarticle'
          AND (config->>'drop_after')::interval = '12 months'::interval
    ) THEN
        PERFORM remove_retention_policy('"signals_newsarticle"'::regclass, if_exists => true);
        PERFORM add_retention_policy('"signals_newsarticle"'::regclass, drop_after => '12 months'::interval);
    END IF;
END
$qvp$;
COMMIT;
