BEGIN;
--
-- Raw SQL operation
--
-- Maintenance in SQL (issue 28): the design documents' `SELECT daily_maintenance();` and
-- `SELECT weekly_maintenance();`, and qvp_maintain behind them and behind `manage.py maintain`
-- (qvp_site/db/maintenance.py). Installed by qvp_site 0012.
--
-- What runs inside a transaction is done here, over every table of the time-series catalog:
-- on plain PostgreSQL the partitions ahead of now (and those covering [cover_from, cover_to]),
-- retention by dropping whole partitions; on TimescaleDB the retention policy kept to the
-- retention in force, retention by drop_chunks, compression where due (qvp_compress_chunks,
-- which closes what it makes); on both the revisions of the rows retention drops, and ANALYZE
-- (daily and weekly). What cannot run in a function is named in the report's "left", and
-- `manage.py maintain` does it after calling the function: refreshing the aggregates
-- (TimescaleDB refuses to refresh a continuous aggregate inside a transaction; the summary
-- tables of plain PostgreSQL are refreshed by the same code, qvp_site/db/aggregates.py) and
-- VACUUM (weekly).
--
-- The retention in force: QVP_RETENTION's value for the table as the last `maintain` recorded
-- it (retention_setting: 'off', an interval, or NULL for none), else the migration's default.
--
-- The owner's: they drop partitions and chunks. Revoked from PUBLIC, granted to no role.

ALTER TABLE qvp_timeseries_table ADD COLUMN IF NOT EXISTS retention_setting text;

CREATE OR REPLACE FUNCTION qvp_retention_in_force(setting text, fallback text) RETURNS interval
LANGUAGE sql STABLE AS $$  -- text to interval reads IntervalStyle
    SELECT CASE
        WHEN setting IS NULL THEN nullif(lower(btrim(coalesce(fallback, ''))), '')::interval
        WHEN lower(btrim(setting)) IN ('', 'off', 'none') THEN NULL
        ELSE setting::interval
    END
$$;

-- A partitioned table's range partitions, with their bounds (the refusing default left out).
CREATE OR REPLACE FUNCTION qvp_range_partitions(parent regclass)
RETURNS TABLE (name text, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT c.relname::text, b[1]::timestamptz, b[2]::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS b
    WHERE i.inhparent = parent AND b IS NOT NULL
    ORDER BY 2
$$;

-- Retention drops history on purpose, not as a revision: the revisions (<table>revision,
-- marketdata 0009) of rows older than cutoff go with them. What it says of them.
CREATE OR REPLACE FUNCTION qvp_drop_revisions_before(tbl text, cutoff timestamptz) RETURNS text
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    dropped bigint;
BEGIN
    IF to_regclass(quote_ident(tbl || 'revision')) IS NULL THEN
        RETURN '';
    END IF;
    EXECUTE format('DELETE FROM %I WHERE ts < $1', tbl || 'revision') USING cutoff;
    GET DIAGNOSTICS dropped = ROW_COUNT;
    RETURN format(', %s revision(s) dropped', dropped);
END
$$;

-- Plain PostgreSQL: partitions ahead (two chunks past the current one, a week at least, as
-- qvp_site.db.partitions.ahead_of) and over [cover_from, cover_to]; retention. Lines said.
CREATE OR REPLACE FUNCTION qvp_maintain_partitions(
    t qvp_timeseries_table, cover_from timestamptz, cover_to timestamptz
) RETURNS text[]
LANGUAGE plpgsql SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    width interval := t.chunk_interval::interval;
    retention interval := qvp_retention_in_force(t.retention_setting, t.retention_default);
    parent regclass := quote_ident(t.table_name)::regclass;
    stamp text;
    made text[] := '{}';
    gone text[] := '{}';
    lines text[] := '{}';
    span record;
    lower_bound timestamptz;
    cutoff timestamptz;
    oldest timestamptz;
    result text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('qvp_partitions:' || t.table_name));
    stamp := CASE WHEN extract(year FROM width) * 12 + extract(month FROM width) > 0
                       OR extract(epoch FROM width)::numeric % 86400 = 0 THEN 'YYYYMMDD'
                  ELSE 'YYYYMMDD"T"HH24MI' END;
    FOR span IN
        SELECT now() - width AS lo,
               greatest(qvp_bucket_floor(width, now()) + 2 * width, now() + interval '7 days') AS hi
        UNION ALL
        SELECT cover_from, cover_to WHERE cover_from IS NOT NULL AND cover_to IS NOT NULL
    LOOP
        FOR lower_bound IN
            SELECT g FROM generate_series(qvp_bucket_floor(width, span.lo), span.hi, width) g
            WHERE g NOT IN (SELECT p.lower_bound FROM qvp_range_partitions(parent) p)
            ORDER BY g
        LOOP
            PERFORM qvp_create_partition(
                parent, left(t.table_name, 48) || '_p' || to_char(lower_bound, stamp),
                lower_bound, lower_bound + width);
            made := made || (left(t.table_name, 48) || '_p' || to_char(lower_bound, stamp));
        END LOOP;
    END LOOP;
    lines := lines || format('%s: %s partition(s) created%s', t.table_name, cardinality(made),
                             coalesce(': ' || array_to_string(made, ', '), ''));
    IF retention IS NOT NULL THEN
        cutoff := now() - retention;
        FOR span IN SELECT p.name FROM qvp_range_partitions(parent) p WHERE p.upper_bound <= cutoff
        LOOP
            EXECUTE format('DROP TABLE %I', span.name);
            gone := gone || span.name::text;
        END LOOP;
        -- A row of a partition that straddles the cutoff stays, and so do its revisions.
        SELECT least(cutoff, min(p.lower_bound)) INTO oldest FROM qvp_range_partitions(parent) p;
        result := format('%s partition(s) older than %s dropped', cardinality(gone),
                         to_char(cutoff, 'YYYY-MM-DD HH24:MI'))
                  || qvp_drop_revisions_before(t.table_name, coalesce(oldest, cutoff));
        UPDATE qvp_timeseries_table SET retention_last_run = now(), retention_last_result = result
        WHERE table_name = t.table_name;
        lines := lines || format('%s: retention %s: %s%s', t.table_name, retention, result,
                                 coalesce(': ' || array_to_string(gone, ', '), ''));
    END IF;
    IF t.compress_after IS NOT NULL THEN
        lines := lines || format('%s: compression unavailable on plain PostgreSQL (skipped)',
                                 t.table_name);
    END IF;
    RETURN lines;
END
$$;

-- TimescaleDB: the retention policy kept to the retention in force, old chunks dropped,
-- compression where due. Lines said.
CREATE OR REPLACE FUNCTION qvp_maintain_chunks(t qvp_timeseries_table) RETURNS text[]
LANGUAGE plpgsql SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    retention interval := qvp_retention_in_force(t.retention_setting, t.retention_default);
    parent regclass := quote_ident(t.table_name)::regclass;
    current_drop text;
    lines text[] := '{}';
    dropped bigint;
    kept timestamptz;
    result text;
BEGIN
    SELECT config->>'drop_after' INTO current_drop FROM timescaledb_information.jobs
    WHERE proc_name = 'policy_retention' AND hypertable_schema = 'public'
      AND hypertable_name = t.table_name;
    IF retention IS NULL AND current_drop IS NULL THEN
        lines := lines || format('%s: no retention', t.table_name);
    ELSIF retention IS NOT NULL AND current_drop::interval = retention THEN
        lines := lines || format('%s: retention %s (unchanged)', t.table_name, current_drop);
    ELSE
        PERFORM remove_retention_policy(parent, if_exists => true);
        IF retention IS NULL THEN
            lines := lines || format('%s: retention policy removed', t.table_name);
        ELSE
            PERFORM add_retention_policy(parent, drop_after => retention);
            lines := lines || format('%s: retention policy set to %s', t.table_name, retention);
        END IF;
    END IF;
    IF retention IS NOT NULL THEN
        SELECT count(*) INTO dropped FROM drop_chunks(parent, older_than => retention);
        SELECT min(range_start) INTO kept FROM timescaledb_information.chunks
        WHERE hypertable_schema = 'public' AND hypertable_name = t.table_name;
        result := format('%s chunk(s) dropped', dropped)
                  || qvp_drop_revisions_before(t.table_name,
                                               least(now() - retention, coalesce(kept, 'infinity')));
        UPDATE qvp_timeseries_table SET retention_last_run = now(), retention_last_result = result
        WHERE table_name = t.table_name;
        lines := lines || format('%s: retention %s: %s', t.table_name, retention, result);
    END IF;
    IF t.compress_after IS NOT NULL THEN
        -- What compression makes has the hypertable's grants: closed in this transaction
        -- (qvp_site/sql/compression/0009.sql), and whatever else is open there with it.
        lines := lines || format('%s: %s chunk(s) compressed or already so', t.table_name,
                                 qvp_compress_chunks(parent, t.compress_after::interval));
        PERFORM qvp_close_timescaledb_chunks();
    END IF;
    RETURN lines;
END
$$;

-- Every step that can run in a transaction, over every time-series table (or only_table
-- alone: the command calls it a table at a time, so that one table's partition DDL does not
-- hold every other table's locks until all are done); the report:
-- {"done": [lines], "left": [what the command does after]}.
CREATE OR REPLACE FUNCTION qvp_maintain(
    statistics boolean DEFAULT false, cover_from timestamptz DEFAULT NULL,
    cover_to timestamptz DEFAULT NULL, only_table text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    t qvp_timeseries_table;
    timescaledb boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    hypertable boolean;
    done text[] := '{}';
    left_over text[] := '{}';
BEGIN
    IF cover_from > cover_to THEN
        RAISE EXCEPTION 'cover: % is after %', cover_from, cover_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR t IN SELECT * FROM qvp_timeseries_table
             WHERE only_table IS NULL OR table_name = only_table ORDER BY table_name LOOP
        hypertable := false;
        IF timescaledb THEN  -- dynamic: plain PostgreSQL has no such view to plan against
            EXECUTE 'SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables'
                    ' WHERE hypertable_schema = ''public'' AND hypertable_name = $1)'
                INTO hypertable USING t.table_name;
        END IF;
        IF hypertable THEN
            done := done || qvp_maintain_chunks(t);
        ELSE
            done := done || qvp_maintain_partitions(t, cover_from, cover_to);
        END IF;
        IF statistics THEN  -- ANALYZE runs in a transaction; VACUUM does not
            EXECUTE format('ANALYZE %I', t.table_name);
            done := done || format('%s: analyze', t.table_name);
        END IF;
    END LOOP;
    SELECT left_over || coalesce(array_agg(format(
               '%s: refresh of its pending ranges and its recent window (%s): manage.py maintain'
               ' (%s)', a.view_name, a.refresh_window,
               CASE WHEN timescaledb THEN 'a continuous aggregate is refreshed outside a transaction'
                    ELSE 'the summary''s query is built by qvp_site/db/aggregates.py' END)
           ORDER BY a.view_name), '{}')
    INTO left_over FROM qvp_timeseries_aggregate a
    WHERE only_table IS NULL OR a.source_table = only_table;
    RETURN jsonb_build_object('done', to_jsonb(done), 'left', to_jsonb(left_over));
END
$$;

CREATE OR REPLACE FUNCTION daily_maintenance(
    cover_from timestamptz DEFAULT NULL, cover_to timestamptz DEFAULT NULL,
    only_table text DEFAULT NULL
) RETURNS jsonb
LANGUAGE sql SET search_path = public, pg_temp AS $$
    SELECT qvp_maintain(true, cover_from, cover_to, only_table)
$$;

CREATE OR REPLACE FUNCTION weekly_maintenance(
    cover_from timestamptz DEFAULT NULL, cover_to timestamptz DEFAULT NULL,
    only_table text DEFAULT NULL
) RETURNS jsonb
LANGUAGE sql SET search_path = public, pg_temp AS $$
    SELECT jsonb_set(r, '{left}', (r->'left') || to_jsonb(ARRAY(
        SELECT format('%s: VACUUM: manage.py maintain --weekly (VACUUM cannot run in a'
                      ' function or a transaction)', table_name)
        FROM qvp_timeseries_table WHERE only_table IS NULL OR table_name = only_table
        ORDER BY table_name)))
    FROM qvp_maintain(true, cover_from, cover_to, only_table) AS r
$$;

REVOKE ALL ON FUNCTION qvp_retention_in_force(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_range_partitions(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_drop_revisions_before(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_maintain_partitions(qvp_timeseries_table, timestamptz, timestamptz)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_maintain_chunks(qvp_timeseries_table) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_maintain(boolean, timestamptz, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION daily_maintenance(timestamptz, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION weekly_maintenance(timestamptz, timestamptz, text) FROM PUBLIC;

COMMIT;
