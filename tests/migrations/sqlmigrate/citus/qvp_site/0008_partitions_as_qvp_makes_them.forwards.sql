BEGIN;
--
-- Raw SQL operation
--
-- Partitions for a load made by the application's role, which owns no table and may run no
-- DDL: the function runs as the owner and makes only range partitions of registered
-- time-series tables, named and bounded as qvp_site.db.partitions makes them. Installed by
-- qvp_site 0008.
--
-- Version 0008: the bounds must be the partition qvp makes there (aligned by qvp_bucket_floor,
-- one chunk_interval wide) and the name the one it gives them. Version 0002 took any name of
-- the table's prefix and any bounds, so the application's role could take a partition's name
-- with a one-second range, and the real partition could then never be made (rows of its range
-- refused for good), or make a wide one overlapping those to come.
CREATE OR REPLACE FUNCTION qvp_create_partition(
    parent regclass, partition_name text, lower_bound timestamptz, upper_bound timestamptz
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    parent_name text;
    width interval;
    stamp text;
BEGIN
    SELECT c.relname, t.chunk_interval::interval INTO parent_name, width FROM pg_class c
    JOIN qvp_timeseries_table t ON t.table_name = c.relname
    WHERE c.oid = parent AND c.relkind = 'p';
    IF parent_name IS NULL THEN
        RAISE EXCEPTION '% is not a partitioned time-series table', parent
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Whole days (and months) are named by the day, others by the minute (partitions.py).
    stamp := CASE WHEN extract(year FROM width) * 12 + extract(month FROM width) > 0
                       OR extract(epoch FROM width)::numeric % 86400 = 0 THEN 'YYYYMMDD'
                  ELSE 'YYYYMMDD"T"HH24MI' END;
    IF lower_bound IS DISTINCT FROM qvp_bucket_floor(width, lower_bound)
       OR upper_bound IS DISTINCT FROM lower_bound + width
       OR partition_name IS DISTINCT FROM
          left(parent_name, 48) || '_p' || to_char(lower_bound AT TIME ZONE 'UTC', stamp) THEN
        RAISE EXCEPTION 'partition % [%, %) of % is not one qvp makes',
            partition_name, lower_bound, upper_bound, parent_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                   partition_name, parent, lower_bound, upper_bound);
END
$$;
REVOKE ALL ON FUNCTION qvp_create_partition(regclass, text, timestamptz, timestamptz) FROM PUBLIC;

COMMIT;
