BEGIN;
--
-- Raw SQL operation
--
-- Version 0018 of the revisions (marketdata 0018). As version 0011, and: into a table Citus
-- distributes, the rows a merge inserts are those whose keys the range did not hold, read once
-- into a CTE (stored), rather than by a subquery into the table for each row: Citus plans no
-- correlated subquery over a distributed table beside a CTE. Into any other table the
-- statement is 0011's, word for word. Citus runs each CTE as a step of its own, not in one
-- snapshot: stored is read before the update, which changes no key, and the merges of one
-- table and instrument take turns, so it holds the keys the NOT EXISTS would have seen.
--
-- Version 0011 (marketdata 0011, the security master): a merge's load is one of its instrument
-- when the load's symbol is one the instrument bore at some time, no longer only its symbol of
-- today (marketdata_merge_checks), and bore on the dates of the rows merged
-- (marketdata_merge_dates_check). Otherwise as version 0009.
--
-- Market data keeps every revision (marketdata 0009). A stored row is changed only here, by
-- functions that run as the owner (trading_app may SELECT and INSERT market data, never UPDATE
-- or DELETE it): a load's rows are merged by marketdata_merge_bars or marketdata_merge_ticks,
-- rows are deleted by marketdata_delete. Each keeps the row it replaces or removes in the
-- table's <table>revision, in the statement that makes the change: the old values with when
-- they were learnt (known_from) and when they stopped being current (known_until, the change's
-- known_from), the load that brought the change, and who acted. Not row triggers: TimescaleDB
-- refuses transition tables on compressed hypertables and deletes whole compressed batches.
--
-- <table>_known_at(t) reads a table as the system knew it at t: the current rows learnt by t,
-- and the revisions current at t. Plain SQL functions, which PostgreSQL inlines into the query
-- that calls them, so a filter on instrument and time reaches the indexes of both tables.
--
-- The rows of a merge come as one array per column, never as a table of the caller's: a table
-- the caller made could carry code of its own (policies, index predicates, types) that the
-- owner would run. Loads of one table and instrument take turns (marketdata_take_turn), so the
-- stored rows a merge compares with are the ones it changes, and a change is stamped with the
-- time it got its turn: the stamps of an instrument's changes increase in the order they
-- commit. A run that reads the present records marketdata_settled_at() as its knowledge time:
-- before every transaction still open, so no change it could not see is known by then.

DROP FUNCTION IF EXISTS marketdata_merge_bars(regclass, bigint, timestamptz[],
    double precision[], double precision[], double precision[], double precision[],
    double precision[], double precision[], integer[]);

-- The loads' turns: one row per table and instrument, locked by the load whose turn it is until
-- its transaction ends. The owner's alone (no role may lock its rows but through the function:
-- an advisory lock, whose key anyone can compute, would let any login hold up the loads).
CREATE TABLE IF NOT EXISTS marketdata_load_turn (
    target text NOT NULL,
    instrument bigint NOT NULL,
    PRIMARY KEY (target, instrument)
);
REVOKE ALL ON marketdata_load_turn FROM PUBLIC;

-- Wait for the turn of ``target`` and ``instrument`` (until this transaction ends); returns the
-- time the turn came, the stamp of what the load changes.
CREATE OR REPLACE FUNCTION marketdata_take_turn(target regclass, instrument bigint)
RETURNS timestamptz LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO marketdata_load_turn VALUES (target::text, instrument) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM marketdata_load_turn t
    WHERE t.target = marketdata_take_turn.target::text
      AND t.instrument = marketdata_take_turn.instrument
    FOR UPDATE;
    RETURN clock_timestamp();
END
$$;

-- The latest moment whose knowledge is settled: before the start of every transaction open in
-- the database but the caller's (a load started before a run read the present and committed
-- after would otherwise be known, as of the run's time, with values the run could not see).
-- What a run that reads the present records as its knowledge time. The owner must see every
-- session's transaction (a superuser, or a member of pg_read_all_stats).
CREATE OR REPLACE FUNCTION marketdata_settled_at() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    oldest timestamptz;
    hidden bigint;
BEGIN
    SELECT min(a.xact_start), count(*) FILTER (WHERE a.state IS NULL)
    INTO oldest, hidden
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
      AND a.backend_type = 'client backend';
    IF hidden > 0 THEN
        RAISE EXCEPTION 'the owner (%) cannot see every session''s transaction', current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'make the owner a member of pg_read_all_stats';
    END IF;
    -- The clock, not now(): what the caller's own transaction wrote so far is known to it.
    RETURN least(clock_timestamp(), oldest - interval '1 microsecond');
END
$$;

-- Who acts, as the audit trail names them (qvp_site/acting.py sets both).
CREATE OR REPLACE FUNCTION marketdata_actor() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT left(coalesce(nullif(current_setting('qvp.actor', true), ''), session_user::text), 150);
$$;

CREATE OR REPLACE FUNCTION marketdata_acting_user() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('qvp.user_id', true) ~ '^[0-9]{1,9}$'
                THEN current_setting('qvp.user_id', true)::integer END;
$$;

-- The columns of ``target`` a revision copies: all but its id and its instrument.
CREATE OR REPLACE FUNCTION marketdata_row_columns(target regclass, prefix text DEFAULT '')
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT string_agg(prefix || quote_ident(attname), ', ' ORDER BY attnum)
    FROM pg_attribute
    WHERE attrelid = target AND attnum > 0 AND NOT attisdropped
      AND attname NOT IN ('id', 'instrument_id', 'underlying_id');
$$;

-- The one statement of a merge into ``target`` (its rows keyed by instrument and ``keys``),
-- the rows given by ``rows_sql``, which selects the key and ``given`` columns from the arrays
-- $5 onwards. $1 is the instrument, $2 and $3 the first and last time (they bound the search
-- to the partitions or chunks the rows fall in), $4 the load; ``stamp`` is the change's time. All of its parts read the same
-- snapshot: stored rows whose values differ are kept as revisions and updated (joined by hash,
-- not probed one by one as ON CONFLICT would), rows not stored are inserted. Loading the same
-- rows twice changes nothing and keeps nothing. Returns (inserted, updated, kept).
CREATE OR REPLACE FUNCTION marketdata_merge_sql(
    target regclass, keys text[], given text[], rows_sql text, stamp timestamptz
) RETURNS text LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
DECLARE
    matched text := (SELECT string_agg(format('t.%1$I = u.%1$I', k), ' AND ') FROM unnest(keys) k);
    stored_values text := (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(given) c);
    new_values text := (SELECT string_agg(format('u.%I', c), ', ') FROM unnest(given) c);
    scope text := 't.instrument_id = $1 AND t.ts BETWEEN $2 AND $3';
    distributed boolean := false;
    stored_keys text := (SELECT string_agg(format('t.%I', k), ', ') FROM unnest(keys) k);
BEGIN
    IF to_regclass('pg_dist_partition') IS NOT NULL THEN  -- dynamic: Citus's catalog or none
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1)'
            INTO distributed USING target;
    END IF;
    RETURN format(
        'WITH u AS MATERIALIZED (%1$s),'
        ' old AS MATERIALIZED (SELECT t.* FROM %2$s AS t JOIN u ON %4$s WHERE %5$s'
        '  AND (%6$s) IS DISTINCT FROM (%7$s)),'
        ' kept AS (INSERT INTO %3$s (row_id, instrument_id, %8$s, known_until, change,'
        '  ingest_id, actor, user_id, db_role)'
        '  SELECT id, instrument_id, %8$s, %12$L::timestamptz, ''revised'', $4, marketdata_actor(),'
        '  marketdata_acting_user(), session_user FROM old RETURNING 1),'
        ' updated AS (UPDATE %2$s AS t SET (%9$s, known_from) = (%7$s, %12$L::timestamptz)'
        '  FROM u WHERE %4$s AND %5$s AND (%6$s) IS DISTINCT FROM (%7$s) RETURNING 1),'
        '%13$s inserted AS (INSERT INTO %2$s (instrument_id, %10$s, %9$s, known_from)'
        '  SELECT $1, %11$s, %7$s, %12$L::timestamptz FROM u WHERE NOT EXISTS'
        '   (SELECT 1 FROM %14$s AS t WHERE %4$s%15$s) RETURNING 1)'
        ' SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM updated),'
        '  (SELECT count(*) FROM kept)',
        rows_sql,
        target,
        (target::text || 'revision')::regclass,
        matched,
        scope,
        stored_values,
        new_values,
        marketdata_row_columns(target),
        (SELECT string_agg(format('%I', c), ', ') FROM unnest(given) c),
        (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) k),
        (SELECT string_agg(format('u.%I', k), ', ') FROM unnest(keys) k),
        stamp,
        CASE WHEN distributed THEN format(' stored AS MATERIALIZED (SELECT %s FROM %s AS t WHERE %s),',
                                    stored_keys, target, scope) ELSE '' END,
        CASE WHEN distributed THEN 'stored' ELSE target::text END,
        CASE WHEN distributed THEN '' ELSE ' AND ' || scope END);
END
$$;

-- Checks common to the merges: the load runs and is one of this table and instrument (a
-- revision names the load that brought it), the rows fit in their arrays, no key comes twice
-- (it would keep one stored row twice as a revision).
CREATE OR REPLACE FUNCTION marketdata_merge_checks(
    target regclass, instrument bigint, ingest bigint, n bigint, lengths bigint[],
    distinct_keys bigint
) RETURNS void LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM marketdata_ingest g
        WHERE g.id = ingest AND g.status = 'running'
          AND g.kind = CASE target WHEN 'marketdata_minutebar'::regclass THEN 'bars-1m'
                                   WHEN 'marketdata_dailybar'::regclass THEN 'bars-1d'
                                   ELSE 'ticks' END
          -- A symbol the instrument bore at some time (the security master, marketdata 0011):
          -- a load of FB's 2020 bars is one of the instrument now called META.
          AND EXISTS (SELECT 1 FROM marketdata_listing l
                      WHERE l.instrument_id = instrument AND l.symbol = g.symbol
                        AND l.known_until IS NULL)
    ) THEN
        RAISE EXCEPTION 'load % is not a load of % that runs: every merge belongs to one',
            ingest, target USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(lengths) AS l WHERE l IS DISTINCT FROM n) THEN
        RAISE EXCEPTION 'every column needs one value per time (% times)', n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF distinct_keys <> n THEN
        RAISE EXCEPTION 'a merge names a key twice (% rows, % keys)', n, distinct_keys
            USING ERRCODE = 'unique_violation';
    END IF;
END
$$;

-- A load's symbol names its instrument on the dates of its rows: the symbol resolves to it
-- (the security master's rule, marketdata_resolve_symbols) on the first row's date and on the
-- last's. A load of a ticker's bars after another company took it never merges into the
-- company that left it.
CREATE OR REPLACE FUNCTION marketdata_merge_dates_check(
    instrument bigint, ingest bigint, first_ts timestamptz, last_ts timestamptz
) RETURNS void LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    on_date date;
    named text;
BEGIN
    SELECT g.symbol INTO named FROM marketdata_ingest g WHERE g.id = ingest;
    FOREACH on_date IN ARRAY ARRAY[first_ts::date, last_ts::date] LOOP
        IF NOT EXISTS (SELECT 1 FROM marketdata_resolve_symbols(ARRAY[named], on_date, NULL) r
                       WHERE r.instrument_id = instrument) THEN
            RAISE EXCEPTION 'load %: % does not name instrument % on %', ingest, named,
                instrument, on_date USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
END
$$;

-- Bars: an array left NULL is a column the load does not have, and stays as stored.
CREATE OR REPLACE FUNCTION marketdata_merge_bars(
    target regclass,
    instrument bigint,
    ingest bigint,
    ts timestamptz[],
    open double precision[],
    high double precision[],
    low double precision[],
    close double precision[],
    volume double precision[],
    vwap double precision[],
    trade_count integer[]
) RETURNS TABLE (inserted bigint, updated bigint, revisions bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n bigint := coalesce(cardinality(ts), 0);
    given text[] := ARRAY['open', 'high', 'low', 'close'];
    first_ts timestamptz;
    last_ts timestamptz;
    stamp timestamptz;
BEGIN
    IF target NOT IN ('marketdata_minutebar'::regclass, 'marketdata_dailybar'::regclass) THEN
        RAISE EXCEPTION '% is not a table of bars', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF instrument IS NULL OR open IS NULL OR high IS NULL OR low IS NULL OR close IS NULL THEN
        RAISE EXCEPTION 'bars need an instrument, open, high, low and close'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM marketdata_merge_checks(target, instrument, ingest, n, ARRAY[cardinality(open),
        cardinality(high), cardinality(low), cardinality(close), coalesce(cardinality(volume), n),
        coalesce(cardinality(vwap), n), coalesce(cardinality(trade_count), n)]::bigint[],
        (SELECT count(DISTINCT t) FROM unnest(ts) AS t));
    IF n = 0 THEN  -- nothing to merge (a slice of a load may hold no rows)
        RETURN QUERY SELECT 0::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    PERFORM marketdata_merge_dates_check(instrument, ingest,
        (SELECT min(t) FROM unnest(ts) AS t), (SELECT max(t) FROM unnest(ts) AS t));
    IF volume IS NOT NULL THEN given := array_append(given, 'volume'); END IF;
    IF vwap IS NOT NULL THEN given := array_append(given, 'vwap'); END IF;
    IF trade_count IS NOT NULL THEN given := array_append(given, 'trade_count'); END IF;
    stamp := marketdata_take_turn(target, instrument);
    SELECT min(t), max(t) INTO first_ts, last_ts FROM unnest(ts) AS t;
    EXECUTE marketdata_merge_sql(target, ARRAY['ts'], given,
        'SELECT * FROM unnest($5, $6, $7, $8, $9, $10, $11, $12)'
        ' AS u (ts, open, high, low, close, volume, vwap, trade_count)', stamp)
    INTO inserted, updated, revisions
    USING instrument, first_ts, last_ts, ingest, ts, open, high, low, close, volume, vwap,
        trade_count;
    RETURN NEXT;
END
$$;

-- Ticks, keyed by (instrument, ts, sequence): a stored tick whose values differ is revised.
CREATE OR REPLACE FUNCTION marketdata_merge_ticks(
    instrument bigint,
    ingest bigint,
    ts timestamptz[],
    sequence bigint[],
    kind text[],
    price double precision[],
    size double precision[],
    bid double precision[],
    ask double precision[],
    bid_size double precision[],
    ask_size double precision[],
    side text[]
) RETURNS TABLE (inserted bigint, updated bigint, revisions bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n bigint := coalesce(cardinality(ts), 0);
    first_ts timestamptz;
    last_ts timestamptz;
    stamp timestamptz;
BEGIN
    IF instrument IS NULL THEN
        RAISE EXCEPTION 'ticks need an instrument' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM marketdata_merge_checks('marketdata_tick', instrument, ingest, n,
        ARRAY[cardinality(sequence), cardinality(kind), cardinality(price), cardinality(size),
        cardinality(bid), cardinality(ask), cardinality(bid_size), cardinality(ask_size),
        cardinality(side)]::bigint[],
        (SELECT count(DISTINCT (t, q)) FROM unnest(ts, sequence) AS k (t, q)));
    IF n = 0 THEN
        RETURN QUERY SELECT 0::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    PERFORM marketdata_merge_dates_check(instrument, ingest,
        (SELECT min(t) FROM unnest(ts) AS t), (SELECT max(t) FROM unnest(ts) AS t));
    stamp := marketdata_take_turn('marketdata_tick', instrument);
    SELECT min(t), max(t) INTO first_ts, last_ts FROM unnest(ts) AS t;
    EXECUTE marketdata_merge_sql('marketdata_tick', ARRAY['ts', 'sequence'],
        ARRAY['kind', 'price', 'size', 'bid', 'ask', 'bid_size', 'ask_size', 'side'],
        'SELECT * FROM unnest($5, $6, $7, $8, $9, $10, $11, $12, $13, $14)'
        ' AS u (ts, sequence, kind, price, size, bid, ask, bid_size, ask_size, side)', stamp)
    INTO inserted, updated, revisions
    USING instrument, first_ts, last_ts, ingest, ts, sequence, kind, price, size, bid, ask,
        bid_size, ask_size, side;
    RETURN NEXT;
END
$$;

-- Deleting market data (a bad vendor file) is itself a revision: the rows of ``instrument``
-- (an option quote's underlying) in [first_ts, end_ts) leave the present and stay readable as
-- known before. Returns how many rows went.
CREATE OR REPLACE FUNCTION marketdata_delete(
    target regclass, instrument bigint, first_ts timestamptz, end_ts timestamptz
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    instrument_column text := CASE WHEN target = 'marketdata_optionquote'::regclass
                                   THEN 'underlying_id' ELSE 'instrument_id' END;
    deleted bigint;
    stamp timestamptz;
BEGIN
    IF target NOT IN ('marketdata_minutebar'::regclass, 'marketdata_dailybar'::regclass,
                      'marketdata_tick'::regclass, 'marketdata_optionquote'::regclass) THEN
        RAISE EXCEPTION '% is not a table of market data', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF instrument IS NULL OR first_ts IS NULL OR end_ts IS NULL OR first_ts >= end_ts THEN
        RAISE EXCEPTION 'a deletion needs an instrument and a range whose start is before its end'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    stamp := marketdata_take_turn(target, instrument);
    EXECUTE format(
        'WITH gone AS (DELETE FROM %1$s WHERE %2$I = $1 AND ts >= $2 AND ts < $3 RETURNING *),'
        ' kept AS (INSERT INTO %3$s (row_id, %2$I, %4$s, known_until, change, actor, user_id,'
        '  db_role)'
        '  SELECT id, %2$I, %4$s, %5$L::timestamptz, ''deleted'', marketdata_actor(),'
        '  marketdata_acting_user(), session_user FROM gone RETURNING 1)'
        ' SELECT count(*) FROM kept',
        target, instrument_column, (target::text || 'revision')::regclass,
        marketdata_row_columns(target), stamp)
    INTO deleted
    USING instrument, first_ts, end_ts;
    RETURN deleted;
END
$$;

REVOKE ALL ON FUNCTION marketdata_take_turn(regclass, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_settled_at() FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_merge_sql(regclass, text[], text[], text, timestamptz)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_merge_checks(regclass, bigint, bigint, bigint, bigint[], bigint)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_merge_dates_check(bigint, bigint, timestamptz, timestamptz)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_merge_bars(regclass, bigint, bigint, timestamptz[],
    double precision[], double precision[], double precision[], double precision[],
    double precision[], double precision[], integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_merge_ticks(bigint, bigint, timestamptz[], bigint[], text[],
    double precision[], double precision[], double precision[], double precision[],
    double precision[], double precision[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_delete(regclass, bigint, timestamptz, timestamptz) FROM PUBLIC;

-- <table>_history: every version of every row, the current ones with known_until NULL; and
-- <table>_known_at(known_at), the table's own row type, so a query (or a Django queryset,
-- marketdata/querysets.py) reads it in the table's place. The view's two branches carry no
-- WHERE of their own: PostgreSQL merges such a UNION ALL into the query that reads it, so
-- the filters on instrument and time reach both tables' (instrument, ts) indexes and an
-- ORDER BY ts is a merge of two index scans, not a sort (a branch with a WHERE is not merged).
DO $$
DECLARE
    name text;
    columns text;
    revision_columns text;
BEGIN
    FOREACH name IN ARRAY ARRAY['marketdata_minutebar', 'marketdata_dailybar', 'marketdata_tick',
                                'marketdata_optionquote'] LOOP
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
               string_agg(CASE attname WHEN 'id' THEN 'row_id' ELSE quote_ident(attname) END,
                          ', ' ORDER BY attnum)
        INTO columns, revision_columns
        FROM pg_attribute
        WHERE attrelid = name::regclass AND attnum > 0 AND NOT attisdropped;
        EXECUTE format(
            'CREATE OR REPLACE VIEW %1$I WITH (security_invoker = true) AS'
            ' SELECT %3$s, NULL::timestamptz AS known_until FROM %2$I'
            ' UNION ALL'
            ' SELECT %4$s, known_until FROM %5$I',
            name || '_history', name, columns, revision_columns, name || 'revision');
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION %1$I(known_at timestamptz) RETURNS SETOF %2$I'
            ' LANGUAGE sql STABLE AS $body$'
            ' SELECT %3$s FROM %4$I'
            ' WHERE known_from <= known_at AND (known_until IS NULL OR known_until > known_at)'
            ' $body$',
            name || '_known_at', name, columns, name || '_history');
    END LOOP;
END
$$;

COMMIT;
