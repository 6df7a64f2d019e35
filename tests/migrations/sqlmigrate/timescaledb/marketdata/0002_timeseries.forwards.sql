BEGIN;
--
-- Create hypertable MinuteBar on ts in chunks of 7 days
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('marketdata_minutebar', 'ts', '7 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'marketdata_minutebar') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"marketdata_minutebar"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'marketdata_minutebar', qvp_constraint);
    END LOOP;
    ALTER TABLE "marketdata_minutebar" ADD CONSTRAINT "marketdata_minutebar_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"marketdata_minutebar"'::regclass, by_range('ts', '7 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable DailyBar on ts in chunks of 1 year
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('marketdata_dailybar', 'ts', '12 months') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'marketdata_dailybar') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"marketdata_dailybar"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'marketdata_dailybar', qvp_constraint);
    END LOOP;
    ALTER TABLE "marketdata_dailybar" ADD CONSTRAINT "marketdata_dailybar_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"marketdata_dailybar"'::regclass, by_range('ts', '12 months'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable Tick on ts in chunks of 1 day
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('marketdata_tick', 'ts', '1 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'marketdata_tick') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"marketdata_tick"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'marketdata_tick', qvp_constraint);
    END LOOP;
    ALTER TABLE "marketdata_tick" ADD CONSTRAINT "marketdata_tick_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"marketdata_tick"'::regclass, by_range('ts', '1 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Create hypertable OptionQuote on ts in chunks of 1 day
--
INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval) VALUES ('marketdata_optionquote', 'ts', '1 days') ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval;
DO $qvp$
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = 'marketdata_optionquote') THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = '"marketdata_optionquote"'::regclass AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', 'marketdata_optionquote', qvp_constraint);
    END LOOP;
    ALTER TABLE "marketdata_optionquote" ADD CONSTRAINT "marketdata_optionquote_pkey"
        PRIMARY KEY ("id", "ts");
    PERFORM create_hypertable('"marketdata_optionquote"'::regclass, by_range('ts', '1 days'::interval),
                              create_default_indexes => false, migrate_data => true);
END
$qvp$;
--
-- Compress MinuteBar chunks older than 7 days
--
UPDATE qvp_timeseries_table SET compress_after = '7 days', compress_segment_by = '{instrument_id}', compress_order_by = 'ts DESC, id' WHERE table_name = 'marketdata_minutebar';
ALTER TABLE "marketdata_minutebar" SET (timescaledb.compress, timescaledb.compress_segmentby = 'instrument_id', timescaledb.compress_orderby = 'ts DESC, id');
SELECT add_compression_policy('"marketdata_minutebar"'::regclass, '7 days'::interval, if_not_exists => true);
--
-- Compress Tick chunks older than 7 days
--
UPDATE qvp_timeseries_table SET compress_after = '7 days', compress_segment_by = '{instrument_id}', compress_order_by = 'ts DESC, sequence, id' WHERE table_name = 'marketdata_tick';
ALTER TABLE "marketdata_tick" SET (timescaledb.compress, timescaledb.compress_segmentby = 'instrument_id', timescaledb.compress_orderby = 'ts DESC, sequence, id');
SELECT add_compression_policy('"marketdata_tick"'::regclass, '7 days'::interval, if_not_exists => true);
--
-- Create continuous aggregate marketdata_minutebar_1h of MinuteBar by 1 hour
--
DO $qvp$
BEGIN
    IF to_regclass('"marketdata_minutebar_1h"') IS NULL THEN
        CREATE MATERIALIZED VIEW "marketdata_minutebar_1h" WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS SELECT time_bucket(INTERVAL '1 hours', "ts") AS bucket, "instrument_id", first("open", "ts") AS "open", max("high") AS "high", min("low") AS "low", last("close", "ts") AS "close", sum("volume") AS "volume", count(*) AS "bar_count" FROM "marketdata_minutebar" GROUP BY bucket, "instrument_id" WITH NO DATA;
        PERFORM add_continuous_aggregate_policy('"marketdata_minutebar_1h"'::regclass, start_offset => '3 days'::interval, end_offset => '1 hours'::interval, schedule_interval => '1 hour'::interval, if_not_exists => true);
    END IF;
END
$qvp$;
INSERT INTO qvp_timeseries_aggregate (view_name, source_table, time_column, bucket_width, group_by, columns, refresh_window) VALUES ('marketdata_minutebar_1h', 'marketdata_minutebar', 'ts', '1 hours', '{instrument_id}', '[["open", "first", "open"], ["high", "max", "high"], ["low", "min", "low"], ["close", "last", "close"], ["volume", "sum", "volume"], ["bar_count", "count", "*"]]'::jsonb, '3 days') ON CONFLICT (view_name) DO NOTHING;
--
-- Create continuous aggregate marketdata_minutebar_1d of MinuteBar by 1 day
--
DO $qvp$
BEGIN
    IF to_regclass('"marketdata_minutebar_1d"') IS NULL THEN
        CREATE MATERIALIZED VIEW "marketdata_minutebar_1d" WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS SELECT time_bucket(INTERVAL '1 days', "ts") AS bucket, "instrument_id", first("open", "ts") AS "open", max("high") AS "high", min("low") AS "low", last("close", "ts") AS "close", sum("volume") AS "volume", count(*) AS "bar_count" FROM "marketdata_minutebar" GROUP BY bucket, "instrument_id" WITH NO DATA;
        PERFORM add_continuous_aggregate_policy('"marketdata_minutebar_1d"'::regclass, start_offset => '7 days'::interval, end_offset => '1 days'::interval, schedule_interval => '1 hour'::interval, if_not_exists => true);
    END IF;
END
$qvp$;
INSERT INTO qvp_timeseries_aggregate (view_name, source_table, time_column, bucket_width, group_by, columns, refresh_window) VALUES ('marketdata_minutebar_1d', 'marketdata_minutebar', 'ts', '1 days', '{instrument_id}', '[["open", "first", "open"], ["high", "max", "high"], ["low", "min", "low"], ["close", "last", "close"], ["volume", "sum", "volume"], ["bar_count", "count", "*"]]'::jsonb, '7 days') ON CONFLICT (view_name) DO NOTHING;
COMMIT;
