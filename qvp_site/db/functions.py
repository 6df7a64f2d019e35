"""SQL functions the time-series machinery installs (qvp_site's first migration)."""

BUCKET_FLOOR_SQL = """
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
"""

REFUSE_UNPARTITIONED_SQL = """
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
"""

INSTALL_SQL = BUCKET_FLOOR_SQL + REFUSE_UNPARTITIONED_SQL
UNINSTALL_SQL = """
DROP FUNCTION IF EXISTS qvp_refuse_unpartitioned_row();
DROP FUNCTION IF EXISTS qvp_bucket_floor(interval, timestamptz);
"""

# Partitions for a load made by the application's role, which owns no table and may run no
# DDL: the function runs as the owner and makes only range partitions of registered
# time-series tables, named as qvp_site.db.partitions names them.
CREATE_PARTITION_SQL = """
CREATE OR REPLACE FUNCTION qvp_create_partition(
    parent regclass, partition_name text, lower_bound timestamptz, upper_bound timestamptz
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    parent_name text;
BEGIN
    SELECT c.relname INTO parent_name FROM pg_class c
    JOIN qvp_timeseries_table t ON t.table_name = c.relname
    WHERE c.oid = parent AND c.relkind = 'p';
    IF parent_name IS NULL THEN
        RAISE EXCEPTION '% is not a partitioned time-series table', parent
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF left(partition_name, length(left(parent_name, 48)) + 2) <> left(parent_name, 48) || '_p'
       OR lower_bound >= upper_bound THEN
        RAISE EXCEPTION 'partition % [%, %) of % is not one qvp makes',
            partition_name, lower_bound, upper_bound, parent_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                   partition_name, parent, lower_bound, upper_bound);
END
$$;
REVOKE ALL ON FUNCTION qvp_create_partition(regclass, text, timestamptz, timestamptz) FROM PUBLIC;
"""
DROP_CREATE_PARTITION_SQL = (
    "DROP FUNCTION IF EXISTS qvp_create_partition(regclass, text, timestamptz, timestamptz);"
)
