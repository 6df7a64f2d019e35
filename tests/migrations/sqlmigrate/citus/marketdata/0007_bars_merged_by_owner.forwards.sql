BEGIN;
--
-- Raw SQL operation
--
-- The one way the application rewrites a stored bar: a load's rows merged into minute or daily
-- bars by a function that runs as the owner. trading_app may only SELECT and INSERT the
-- market-data tables (marketdata/apps.py); a load whose range holds no rows inserts them
-- itself, a load over stored bars calls this. Installed by marketdata 0007; the roles command
-- grants EXECUTE to trading_app (qvp_site/db/roles.py, OWNERS_FUNCTIONS).
--
-- The rows come as one array per column, never as a table of the caller's: a table the caller
-- made could carry code of its own (policies, index predicates, types) that the owner would
-- run. An array left NULL is a column the load does not have, and stays as stored. A row is
-- rewritten only where a value differs, so loading the same rows twice changes nothing.
-- Returns how many rows were inserted and how many rewritten.

CREATE OR REPLACE FUNCTION marketdata_merge_bars(
    target regclass,
    instrument bigint,
    ts timestamptz[],
    open double precision[],
    high double precision[],
    low double precision[],
    close double precision[],
    volume double precision[],
    vwap double precision[],
    trade_count integer[]
) RETURNS TABLE (inserted bigint, updated bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n bigint := coalesce(cardinality(ts), 0);
    given text[] := ARRAY['open', 'high', 'low', 'close'];
    first_ts timestamptz;
    last_ts timestamptz;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = target
                   AND c.relnamespace = 'public'::regnamespace
                   AND c.relname IN ('marketdata_minutebar', 'marketdata_dailybar')) THEN
        RAISE EXCEPTION '% is not a table of bars', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF n = 0 THEN  -- nothing to merge (a slice of a load may hold no rows)
        RETURN QUERY SELECT 0::bigint, 0::bigint;
        RETURN;
    END IF;
    IF instrument IS NULL OR open IS NULL OR high IS NULL OR low IS NULL OR close IS NULL THEN
        RAISE EXCEPTION 'bars need an instrument, open, high, low and close'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF coalesce(cardinality(open), 0) <> n OR coalesce(cardinality(high), 0) <> n
       OR coalesce(cardinality(low), 0) <> n OR coalesce(cardinality(close), 0) <> n
       OR cardinality(volume) <> n OR cardinality(vwap) <> n OR cardinality(trade_count) <> n THEN
        RAISE EXCEPTION 'every column of bars needs one value per time (% times)', n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF volume IS NOT NULL THEN given := array_append(given, 'volume'); END IF;
    IF vwap IS NOT NULL THEN given := array_append(given, 'vwap'); END IF;
    IF trade_count IS NOT NULL THEN given := array_append(given, 'trade_count'); END IF;

    -- The range bounds the search to the partitions or chunks it covers.
    SELECT min(t), max(t) INTO first_ts, last_ts FROM unnest(ts) AS t;
    -- One statement: stored rows that differ are updated (joined by hash, not probed one
    -- by one as ON CONFLICT would), the others inserted; both read the same snapshot. A row
    -- another load inserted since is taken by ON CONFLICT, as the load's values.
    EXECUTE format(
        'WITH u AS MATERIALIZED (SELECT * FROM unnest($4, $5, $6, $7, $8, $9, $10, $11)'
        '  AS u (ts, open, high, low, close, volume, vwap, trade_count)),'
        ' updated AS (UPDATE %1$s AS t SET %4$s FROM u'
        '  WHERE t.instrument_id = $1 AND t.ts BETWEEN $2 AND $3 AND t.ts = u.ts'
        '  AND (%5$s) IS DISTINCT FROM (%3$s) RETURNING 1),'
        ' inserted AS (INSERT INTO %1$s AS t (instrument_id, ts, %2$s)'
        '  SELECT $1, u.ts, %3$s FROM u WHERE NOT EXISTS (SELECT 1 FROM %1$s AS s'
        '   WHERE s.instrument_id = $1 AND s.ts BETWEEN $2 AND $3 AND s.ts = u.ts)'
        '  ON CONFLICT (instrument_id, ts) DO UPDATE SET %6$s'
        '  WHERE (%5$s) IS DISTINCT FROM (%7$s) RETURNING 1)'
        ' SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM updated)',
        target,
        (SELECT string_agg(format('%I', c), ', ') FROM unnest(given) AS c),
        (SELECT string_agg(format('u.%I', c), ', ') FROM unnest(given) AS c),
        (SELECT string_agg(format('%1$I = u.%1$I', c), ', ') FROM unnest(given) AS c),
        (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(given) AS c),
        (SELECT string_agg(format('%1$I = EXCLUDED.%1$I', c), ', ') FROM unnest(given) AS c),
        (SELECT string_agg(format('EXCLUDED.%I', c), ', ') FROM unnest(given) AS c))
    INTO inserted, updated
    USING instrument, first_ts, last_ts, ts, open, high, low, close, volume, vwap, trade_count;
    RETURN NEXT;
END
$$;

REVOKE ALL ON FUNCTION marketdata_merge_bars(
    regclass, bigint, timestamptz[], double precision[], double precision[], double precision[],
    double precision[], double precision[], double precision[], integer[]
) FROM PUBLIC;

COMMIT;
