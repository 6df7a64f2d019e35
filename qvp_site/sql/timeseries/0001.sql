-- The time-series catalog (which tables are time series, their policies and aggregates) and
-- the functions the plain engine's partitions use. Installed by qvp_site 0001.
CREATE TABLE IF NOT EXISTS qvp_timeseries_table (
    table_name text PRIMARY KEY,
    time_column text NOT NULL,
    chunk_interval text NOT NULL,
    retention_default text,
    compress_after text,
    compress_segment_by text[] NOT NULL DEFAULT '{}',
    compress_order_by text,
    retention_last_run timestamptz,
    retention_last_result text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS qvp_timeseries_aggregate (
    view_name text PRIMARY KEY,
    source_table text NOT NULL,
    time_column text NOT NULL,
    bucket_width text NOT NULL,
    group_by text[] NOT NULL DEFAULT '{}',
    columns jsonb NOT NULL,
    refresh_window text NOT NULL,
    refreshed_at timestamptz,
    refreshed_from timestamptz,
    refreshed_to timestamptz
);

CREATE OR REPLACE FUNCTION qvp_bucket_floor(width interval, ts timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- Whole months bucket by the calendar from January 2000 (date_bin has no months), other
    -- widths by date_bin from Monday 2000-01-03: the origins TimescaleDB's time_bucket uses.
    SELECT CASE
        WHEN extract(year FROM width) * 12 + extract(month FROM width) > 0 THEN
            (timestamp '2000-01-01' + make_interval(months => (
                floor(((extract(year FROM ts AT TIME ZONE 'UTC') - 2000) * 12
                       + extract(month FROM ts AT TIME ZONE 'UTC') - 1)
                      / (extract(year FROM width) * 12 + extract(month FROM width)))
                * (extract(year FROM width) * 12 + extract(month FROM width)))::int))
            AT TIME ZONE 'UTC'
        ELSE date_bin(width, ts, timestamptz '2000-01-03 00:00:00+00')
    END
$$;

CREATE OR REPLACE FUNCTION qvp_refuse_unpartitioned_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ts timestamptz := (to_jsonb(NEW) ->> TG_ARGV[1])::timestamptz;
    width interval;
    lower_bound timestamptz;
BEGIN
    SELECT chunk_interval::interval INTO width FROM qvp_timeseries_table
    WHERE table_name = TG_ARGV[0];
    lower_bound := qvp_bucket_floor(width, ts);
    RAISE EXCEPTION 'no partition of % holds %=%: the missing range is [%, %)',
        TG_ARGV[0], TG_ARGV[1], ts, lower_bound, lower_bound + width
        USING ERRCODE = 'check_violation',
              HINT = 'Create it with "manage.py maintain --cover START END"; ingest commands'
                     ' create the partitions a load needs themselves.';
END
$$;
