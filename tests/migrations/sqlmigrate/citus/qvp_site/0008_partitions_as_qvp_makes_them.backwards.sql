BEGIN;
--
-- Raw SQL operation
--
-- Partitions for a load made by the application's role, which owns no table and may run no
-- DDL: the function runs as the owner and makes only range partitions of registered
-- time-series tables, named as qvp_site.db.partitions names them. Installed by qvp_site 0002.
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

COMMIT;
