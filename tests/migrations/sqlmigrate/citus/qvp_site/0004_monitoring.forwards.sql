BEGIN;
--
-- Raw SQL operation
--
-- The monitoring views: system_health and the views it summarises (system_table_sizes,
-- system_index_usage, system_connections, system_replication, system_slow_statements).
-- What a plain role may not read of the server's statistics is read by SECURITY DEFINER
-- functions running as the owner. Installed by qvp_site 0004.

-- pg_stat_statements is created where the server preloads it and the owner may (it needs a
-- superuser): otherwise the views show no slow statements.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')
       AND 'pg_stat_statements' = ANY(string_to_array(
           replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
    THEN
        CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pg_stat_statements not created: %', SQLERRM;
END $$;

CREATE OR REPLACE VIEW system_table_sizes AS
WITH RECURSIVE tree(root, relid) AS (
    SELECT c.oid, c.oid FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'm')
      AND NOT c.relispartition
    UNION ALL
    SELECT tree.root, i.inhrelid FROM tree JOIN pg_inherits i ON i.inhparent = tree.relid
)
SELECT t.root::regclass::text AS table_name,
       sum(pg_total_relation_size(t.relid))::bigint AS total_bytes,
       sum(pg_table_size(t.relid))::bigint AS table_bytes,
       sum(pg_indexes_size(t.relid))::bigint AS index_bytes,
       (count(*) - 1)::integer AS partitions,
       coalesce(sum(s.n_live_tup), 0)::bigint AS live_tuples,
       coalesce(sum(s.n_dead_tup), 0)::bigint AS dead_tuples,
       round(coalesce(sum(s.n_dead_tup), 0)::numeric
             / nullif(coalesce(sum(s.n_live_tup), 0) + coalesce(sum(s.n_dead_tup), 0), 0), 4)
           AS dead_ratio,
       max(greatest(s.last_vacuum, s.last_autovacuum)) AS last_vacuum,
       max(greatest(s.last_analyze, s.last_autoanalyze)) AS last_analyze
FROM tree t LEFT JOIN pg_stat_all_tables s ON s.relid = t.relid
GROUP BY t.root;

CREATE OR REPLACE FUNCTION qvp_index_usage()
RETURNS TABLE (index_name text, table_name text, index_bytes bigint, scans bigint,
               is_unique boolean, unused boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    chunks text := '';
BEGIN
    IF to_regclass('_timescaledb_catalog.chunk_index') IS NOT NULL THEN
        chunks := $q$
        UNION ALL
        SELECT format('%I.%I', h.schema_name, ci.hypertable_index_name)::regclass,
               format('%I.%I', c.schema_name, ci.index_name)::regclass
        FROM _timescaledb_catalog.chunk_index ci
        JOIN _timescaledb_catalog.chunk c ON c.id = ci.chunk_id
        JOIN _timescaledb_catalog.hypertable h ON h.id = ci.hypertable_id
        WHERE to_regclass(format('%I.%I', c.schema_name, ci.index_name)) IS NOT NULL
          AND to_regclass(format('%I.%I', h.schema_name, ci.hypertable_index_name)) IS NOT NULL
        $q$;
    END IF;
    RETURN QUERY EXECUTE format($q$
    WITH RECURSIVE tree(root, relid) AS (
        SELECT i.indexrelid, i.indexrelid FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relnamespace = 'public'::regnamespace AND NOT c.relispartition
        UNION ALL
        SELECT tree.root, inh.inhrelid FROM tree JOIN pg_inherits inh ON inh.inhparent = tree.relid
        %s
    )
    SELECT ic.relname::text, tc.relname::text,
           sum(pg_relation_size(t.relid))::bigint, coalesce(sum(s.idx_scan), 0)::bigint,
           i.indisunique OR i.indisprimary,
           coalesce(sum(s.idx_scan), 0) = 0 AND NOT (i.indisunique OR i.indisprimary)
    FROM tree t
    JOIN pg_index i ON i.indexrelid = t.root
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class tc ON tc.oid = i.indrelid
    LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = t.relid
    GROUP BY ic.relname, tc.relname, i.indisunique, i.indisprimary
    $q$, chunks);
END $$;
CREATE OR REPLACE VIEW system_index_usage AS SELECT * FROM qvp_index_usage();

CREATE OR REPLACE FUNCTION qvp_connections()
RETURNS TABLE (database text, role text, state text, connections integer,
               longest_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(datname::text, ''), coalesce(usename::text, ''),
           coalesce(state, backend_type), count(*)::integer,
           max(extract(epoch FROM now() - coalesce(xact_start, backend_start)))::float8
    FROM pg_stat_activity
    GROUP BY 1, 2, 3
$$;
CREATE OR REPLACE VIEW system_connections AS SELECT * FROM qvp_connections();

CREATE OR REPLACE FUNCTION qvp_replication()
RETURNS TABLE (role text, replica text, state text, lag_bytes numeric, lag_seconds float8)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN QUERY SELECT 'standby'::text, coalesce(
                   (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver), ''),
               coalesce((SELECT status FROM pg_stat_wal_receiver), 'not streaming'),
               pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()),
               CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                    ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
               END;
    ELSE
        RETURN QUERY SELECT 'primary'::text,
               coalesce(r.application_name, '') || '@' || coalesce(host(r.client_addr), 'local'),
               r.state::text, pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn),
               coalesce(extract(epoch FROM r.replay_lag), 0)::float8
        FROM pg_stat_replication r;
    END IF;
END $$;
CREATE OR REPLACE VIEW system_replication AS SELECT * FROM qvp_replication();

CREATE OR REPLACE FUNCTION qvp_slow_statements(top integer DEFAULT 20)
RETURNS TABLE (query text, calls bigint, total_ms float8, mean_ms float8, max_ms float8,
               rows_returned bigint, role text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    schema_name text;
BEGIN
    -- The extension is optional (it must be preloaded by the server and created here).
    SELECT n.nspname INTO schema_name FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements';
    IF schema_name IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.query, s.calls, s.total_exec_time, s.mean_exec_time, s.max_exec_time,'
        ' s.rows, r.rolname::text FROM %I.pg_stat_statements s'
        ' LEFT JOIN pg_roles r ON r.oid = s.userid'
        ' WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())'
        ' ORDER BY s.mean_exec_time DESC LIMIT %s', schema_name, greatest(top, 0));
END $$;
CREATE OR REPLACE VIEW system_slow_statements AS SELECT * FROM qvp_slow_statements(20);

CREATE OR REPLACE VIEW system_health AS
SELECT 'database_size'::text AS check, current_database()::text AS subject,
       pg_database_size(current_database())::numeric AS value, 'bytes'::text AS unit,
       ''::text AS detail
UNION ALL
SELECT 'connections', state, sum(connections), 'connections',
       'of max_connections ' || current_setting('max_connections')
FROM system_connections WHERE database = current_database() GROUP BY state
UNION ALL
SELECT 'connections_server', 'all', sum(connections), 'connections',
       'of max_connections ' || current_setting('max_connections')
FROM system_connections
UNION ALL
(SELECT 'table_size', table_name, total_bytes, 'bytes',
        format('table %s, indexes %s, partitions %s', pg_size_pretty(table_bytes),
               pg_size_pretty(index_bytes), partitions)
 FROM system_table_sizes ORDER BY total_bytes DESC LIMIT 10)
UNION ALL
(SELECT 'dead_tuples', table_name, dead_tuples, 'rows',
        format('dead ratio %s, last vacuum %s', dead_ratio, coalesce(last_vacuum::text, 'never'))
 FROM system_table_sizes WHERE dead_tuples > 0 ORDER BY dead_tuples DESC LIMIT 10)
UNION ALL
(SELECT 'unused_index', index_name, index_bytes, 'bytes', 'on ' || table_name || ', no scans'
 FROM system_index_usage WHERE unused ORDER BY index_bytes DESC LIMIT 20)
UNION ALL
SELECT 'replication_lag', replica, lag_seconds::numeric, 'seconds',
       format('%s, %s, %s bytes behind', role, state, lag_bytes)
FROM system_replication
UNION ALL
(SELECT 'slow_statement', left(query, 200), round(mean_ms::numeric, 3), 'ms mean',
        format('%s calls, max %s ms, by %s', calls, round(max_ms::numeric, 3), role)
 FROM qvp_slow_statements(10));
-- The functions reveal the server's statistics: to the application's and read-only roles only
-- (granted again by create_db_roles, see qvp_site/db/roles.py).
REVOKE ALL ON FUNCTION qvp_index_usage() FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_connections() FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_replication() FROM PUBLIC;
REVOKE ALL ON FUNCTION qvp_slow_statements(integer) FROM PUBLIC;
-- Roles that create_db_roles made before this migration ran get the functions now; roles made
-- later get them from create_db_roles itself.
DO $$
DECLARE
    role_name text;
    fn text;
BEGIN
    FOR role_name IN SELECT rolname FROM pg_roles
                     WHERE rolname IN ('trading_app', 'trading_readonly') LOOP
        FOREACH fn IN ARRAY ARRAY['qvp_index_usage()', 'qvp_connections()', 'qvp_replication()',
                                  'qvp_slow_statements(integer)'] LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, role_name);
        END LOOP;
        EXECUTE format('GRANT SELECT ON %s TO %I', 'system_health, system_slow_statements,'
            ' system_replication, system_connections, system_index_usage, system_table_sizes',
            role_name);
    END LOOP;
END $$;

COMMIT;
