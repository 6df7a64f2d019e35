BEGIN;
--
-- Raw SQL operation
--
-- The summary tables of plain PostgreSQL refreshed in SQL (issue 28): one implementation behind
-- `daily_maintenance()`, `manage.py maintain` and the loads' refreshes (qvp_site/db/aggregates.py
-- calls these functions). Installed by qvp_site 0013, over version 0012, whose other functions
-- stay: qvp_maintain is replaced, so that on plain PostgreSQL it refreshes each summary's
-- pending ranges and its recent window itself, and its report leaves to the command only what
-- cannot run in a function (a continuous aggregate's refresh on TimescaleDB, VACUUM).
--
-- The owner's only, as the summaries are: a role that could rewrite a summary's buckets could
-- make the market data's hourly and daily figures say anything. Revoked from PUBLIC.

-- A name quoted always, as psycopg's sql.Identifier quotes it (qvp_site.db.quoting.ident), so
-- that qvp_summary_select writes the same text as qvp_site.db.aggregates.select_sql.
CREATE OR REPLACE FUNCTION qvp_quoted_name(name text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT '"' || replace(name, '"', '""') || '"'
$$;

-- The catalog's row of the aggregate named ``view``; an unknown name is refused, naming it.
CREATE OR REPLACE FUNCTION qvp_summary(view text) RETURNS qvp_timeseries_aggregate
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
DECLARE
    a qvp_timeseries_aggregate;
BEGIN
    SELECT * INTO a FROM qvp_timeseries_aggregate WHERE view_name = view;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no aggregate named % in the catalog (qvp_timeseries_aggregate)', view
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN a;
END
$$;

-- The catalogued aggregate's SELECT over its source table as plain PostgreSQL computes it, with
-- an optional WHERE clause: the query that created the summary table (select_sql, run by the
-- migration that made it; tests/qvp_site/test_summary_refresh.py holds the two texts equal).
CREATE OR REPLACE FUNCTION qvp_summary_select(view text, where_sql text DEFAULT '')
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
DECLARE
    a qvp_timeseries_aggregate;
    width interval;
    ts text;
    groups text[];
    items text[];
    col record;
    arg text;
BEGIN
    a := qvp_summary(view);
    width := a.bucket_width::interval;
    ts := qvp_quoted_name(a.time_column);
    -- qvp_site.db.buckets.bucket_sql: whole months by the calendar, other widths by date_bin
    -- from Monday 2000-01-03 (TimescaleDB's origins).
    items := ARRAY[CASE
        WHEN extract(year FROM width) * 12 + extract(month FROM width) > 0 THEN
            format('qvp_bucket_floor(INTERVAL %L, %s)', a.bucket_width, ts)
        ELSE format('date_bin(INTERVAL %L, %s, TIMESTAMPTZ ''2000-01-03 00:00:00+00'')',
                    a.bucket_width, ts)
    END || ' AS bucket'];
    SELECT coalesce(array_agg(qvp_quoted_name(g) ORDER BY o), '{}') INTO groups
    FROM unnest(a.group_by) WITH ORDINALITY AS u(g, o);
    items := items || groups;
    FOR col IN SELECT c->>0 AS alias, c->>1 AS fn, c->>2 AS source
               FROM jsonb_array_elements(a.columns) WITH ORDINALITY AS e(c, o) ORDER BY o LOOP
        arg := CASE WHEN col.source = '*' THEN '*' ELSE qvp_quoted_name(col.source) END;
        -- first and last as qvp_site.db.buckets.edge_sql: one ascending array per group.
        items := items || (CASE col.fn
            WHEN 'first' THEN format('(array_agg(%s ORDER BY %s ASC))[1]', arg, ts)
            WHEN 'last' THEN format('(array_agg(%s ORDER BY %s ASC))[count(*)]', arg, ts)
            WHEN 'min' THEN format('min(%s)', arg)
            WHEN 'max' THEN format('max(%s)', arg)
            WHEN 'sum' THEN format('sum(%s)', arg)
            WHEN 'avg' THEN format('avg(%s)', arg)
            WHEN 'count' THEN format('count(%s)', arg)
        END || ' AS ' || qvp_quoted_name(col.alias));
        IF items[cardinality(items)] IS NULL THEN
            RAISE EXCEPTION 'aggregate %, column %: unknown function %', view, col.alias, col.fn
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    RETURN format('SELECT %s FROM %s%s GROUP BY %s', array_to_string(items, ', '),
                  qvp_quoted_name(a.source_table),
                  CASE WHEN coalesce(where_sql, '') = '' THEN '' ELSE ' WHERE ' || where_sql END,
                  array_to_string(ARRAY['bucket'] || groups, ', '));
END
$$;

-- Recompute the summary's buckets that overlap [from_ts, to_ts] (widened to whole buckets: the
-- first bucket's start to the end of the last), under the lock every refresh of it takes
-- (qvp_agg:<name>, marketdata/aggregates.py's rollups included), and record the range done.
CREATE OR REPLACE FUNCTION qvp_refresh_summary(view text, from_ts timestamptz, to_ts timestamptz)
RETURNS TABLE (done_from timestamptz, done_to timestamptz)
LANGUAGE plpgsql SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    a qvp_timeseries_aggregate;
    width interval;
BEGIN
    a := qvp_summary(view);
    IF from_ts IS NULL OR to_ts IS NULL OR from_ts > to_ts THEN
        RAISE EXCEPTION 'refresh of %: [%, %] is not a range', view, from_ts, to_ts
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass(qvp_quoted_name(view)))
       IS DISTINCT FROM 'r' THEN
        RAISE EXCEPTION '% is not a summary table: a continuous aggregate is refreshed by'
                        ' CALL refresh_continuous_aggregate, outside a transaction', view
            USING ERRCODE = 'wrong_object_type';
    END IF;
    width := a.bucket_width::interval;
    done_from := qvp_bucket_floor(width, from_ts);
    done_to := qvp_bucket_floor(width, to_ts) + width;
    PERFORM pg_advisory_xact_lock(hashtext('qvp_agg:' || view));
    EXECUTE format('DELETE FROM %s WHERE bucket >= $1 AND bucket < $2', qvp_quoted_name(view))
        USING done_from, done_to;
    EXECUTE format('INSERT INTO %s %s', qvp_quoted_name(view),
                   qvp_summary_select(view, format('%1$s >= $1 AND %1$s < $2',
                                                   qvp_quoted_name(a.time_column))))
        USING done_from, done_to;
    UPDATE qvp_timeseries_aggregate SET refreshed_at = now(), refreshed_from = done_from,
        refreshed_to = done_to
    WHERE view_name = view;
    RETURN NEXT;
END
$$;

-- The range loads by the application's role left pending (it may not refresh), taken and
-- refreshed in one transaction: a failure puts the mark back with everything else. The lock
-- first, then the catalog row: the order the rollups take them in, so that none waits in a
-- cycle. No row when nothing was pending.
CREATE OR REPLACE FUNCTION qvp_refresh_summary_pending(view text)
RETURNS TABLE (done_from timestamptz, done_to timestamptz)
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    lower_bound timestamptz;
    upper_bound timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('qvp_agg:' || view));
    SELECT pending_from, pending_to INTO lower_bound, upper_bound
    FROM qvp_timeseries_aggregate WHERE view_name = view FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no aggregate named % in the catalog (qvp_timeseries_aggregate)', view
            USING ERRCODE = 'undefined_object';
    END IF;
    IF lower_bound IS NULL THEN
        RETURN;
    END IF;
    UPDATE qvp_timeseries_aggregate SET pending_from = NULL, pending_to = NULL
    WHERE view_name = view;
    RETURN QUERY SELECT * FROM qvp_refresh_summary(view, lower_bound, upper_bound);
END
$$;

-- A table's summaries refreshed, pending ranges then the recent window, as `maintain` always
-- did: {"done": [lines]}; on TimescaleDB nothing is done and each continuous aggregate is
-- named in "left" instead.
CREATE OR REPLACE FUNCTION qvp_refresh_summaries(tbl text, timescaledb boolean) RETURNS jsonb
LANGUAGE plpgsql SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    a qvp_timeseries_aggregate;
    span record;
    done text[] := '{}';
    left_over text[] := '{}';
BEGIN
    FOR a IN SELECT * FROM qvp_timeseries_aggregate WHERE source_table = tbl
             ORDER BY view_name LOOP  -- by name: the order the loads mark and lock them in
        IF timescaledb THEN
            left_over := left_over || format(
                '%s: refresh of its pending ranges and its recent window (%s): manage.py'
                ' maintain (a continuous aggregate is refreshed outside a transaction)',
                a.view_name, a.refresh_window);
            CONTINUE;
        END IF;
        FOR span IN SELECT * FROM qvp_refresh_summary_pending(a.view_name) LOOP
            done := done || format('%s: refreshed pending %s .. %s', a.view_name,
                                   to_char(span.done_from, 'YYYY-MM-DD HH24:MI'),
                                   to_char(span.done_to, 'YYYY-MM-DD HH24:MI'));
        END LOOP;
        SELECT * INTO span
        FROM qvp_refresh_summary(a.view_name, now() - a.refresh_window::interval, now());
        done := done || format('%s: refreshed %s .. %s', a.view_name,
                               to_char(span.done_from, 'YYYY-MM-DD HH24:MI'),
                               to_char(span.done_to, 'YYYY-MM-DD HH24:MI'));
    END LOOP;
    RETURN jsonb_build_object('done', to_jsonb(done), 'left', to_jsonb(left_over));
END
$$;

-- The summaries' locks of a table, taken in name order before its partition work: a load's
-- refresh holds one while it reads the table, and partition DDL holds the table until the
-- transaction ends, so the other order would wait in a cycle.
CREATE OR REPLACE FUNCTION qvp_lock_summaries(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    view text;
BEGIN
    FOR view IN SELECT view_name FROM qvp_timeseries_aggregate WHERE source_table = tbl
                ORDER BY view_name LOOP
        PERFORM pg_advisory_xact_lock(hashtext('qvp_agg:' || view));
    END LOOP;
END
$$;

-- 0012's qvp_maintain, with the table's summaries refreshed too (qvp_refresh_summaries) unless
-- not `refresh`: `manage.py maintain` refreshes them in a transaction of their own, after the
-- partition work commits, so that readers of the table wait for the DDL alone.
-- daily_maintenance and weekly_maintenance call it as before, refreshing.
DROP FUNCTION IF EXISTS qvp_maintain(boolean, timestamptz, timestamptz, text);
CREATE OR REPLACE FUNCTION qvp_maintain(
    statistics boolean DEFAULT false, cover_from timestamptz DEFAULT NULL,
    cover_to timestamptz DEFAULT NULL, only_table text DEFAULT NULL, refresh boolean DEFAULT true
) RETURNS jsonb
LANGUAGE plpgsql SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    t qvp_timeseries_table;
    timescaledb boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    hypertable boolean;
    summaries jsonb;
    done jsonb := '[]';
    left_over jsonb := '[]';
BEGIN
    IF cover_from > cover_to THEN
        RAISE EXCEPTION 'cover: % is after %', cover_from, cover_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR t IN SELECT * FROM qvp_timeseries_table
             WHERE only_table IS NULL OR table_name = only_table ORDER BY table_name LOOP
        IF refresh THEN
            PERFORM qvp_lock_summaries(t.table_name);
        END IF;
        hypertable := false;
        IF timescaledb THEN  -- dynamic: plain PostgreSQL has no such view to plan against
            EXECUTE 'SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables'
                    ' WHERE hypertable_schema = ''public'' AND hypertable_name = $1)'
                INTO hypertable USING t.table_name;
        END IF;
        IF hypertable THEN
            done := done || to_jsonb(qvp_maintain_chunks(t));
        ELSE
            done := done || to_jsonb(qvp_maintain_partitions(t, cover_from, cover_to));
        END IF;
        IF statistics THEN  -- ANALYZE runs in a transaction; VACUUM does not
            EXECUTE format('ANALYZE %I', t.table_name);
            done := done || to_jsonb(format('%s: analyze', t.table_name));
        END IF;
        IF refresh THEN
            summaries := qvp_refresh_summaries(t.table_name, timescaledb);
            done := done || (summaries->'done');
            left_over := left_over || (summaries->'left');
        END IF;
    END LOOP;
    RETURN jsonb_build_object('done', done, 'left', left_over);
END
$$;

REVOKE ALL ON FUNCTION qvp_quoted_name(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_summary(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_summary_select(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_refresh_summary(text, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_refresh_summary_pending(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_refresh_summaries(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_lock_summaries(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_maintain(boolean, timestamptz, timestamptz, text, boolean) FROM PUBLIC;

COMMIT;
