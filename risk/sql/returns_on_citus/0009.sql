-- Version 0009 of risk_daily_returns, on Citus only (risk 0009): version 0006's, the same
-- answers, in PL/pgSQL. Elsewhere 0006's text stays.
--
-- 0006 writes it in SQL, which PostgreSQL inlines: a lateral lookup of each instrument's bars
-- from a list of ids, adjusted by marketdata_dailybar_adjusted. Citus refuses all three: a SQL
-- function with parameters over its distributed tables, a lateral lookup into them from a
-- list, and the adjusted read (marketdata/adjusting.py). In PL/pgSQL each statement is planned
-- by Citus on its own, with the parameters' values: the factors of the corporate actions are
-- computed first, in a statement of their own; the bars are looked up from the instruments'
-- keys, distributed beside them (as marketdata.prices' on Citus), each on the shard that holds
-- the instrument, as traded; then adjusted on the coordinator. As known at a time, the
-- table's <table>_known_at body is written out, $1 the moment.

CREATE OR REPLACE FUNCTION risk_daily_returns(
    p_instruments bigint[], p_as_of timestamptz, p_lookback integer,
    p_known_at timestamptz DEFAULT NULL, p_adjustment text DEFAULT 'total_return'
) RETURNS TABLE (day date, instrument_id bigint, ret float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    factor_ids bigint[];
    factor_bounds text[];
    factors text[];
    daily_source text := CASE WHEN p_known_at IS NULL THEN 'marketdata_dailybar'
        ELSE '(SELECT * FROM marketdata_dailybar_history WHERE known_from <= $1'
             ' AND (known_until IS NULL OR known_until > $1))' END;
BEGIN
    IF p_lookback IS NULL THEN  -- 0006's answer: no bar before the latest, no return
        RETURN;
    END IF;
    -- The factors of the instruments' actions, known at p_known_at (as 0006's adjusted read).
    SELECT coalesce(array_agg(a.instrument_id), '{}'), coalesce(array_agg(a.bounds::text), '{}'),
           coalesce(array_agg(a.price_factors::text), '{}')
    INTO factor_ids, factor_bounds, factors
    FROM marketdata_action_factors(risk_adjustment_checked(p_adjustment), p_known_at, NULL) a
    WHERE a.instrument_id = ANY(p_instruments);
    RETURN QUERY EXECUTE format($q$
    WITH raw AS MATERIALIZED (
        -- Each instrument's last p_lookback + 1 bars, as traded, on its shard.
        SELECT k.id AS instrument_id, b.ts, b.close
        FROM marketdata_instrument_key k
        CROSS JOIN LATERAL (
            SELECT d.ts, d.close FROM %s d
            WHERE d.instrument_id = k.id AND d.ts <= $2
            ORDER BY d.ts DESC LIMIT $3 + 1
        ) AS b
        WHERE k.id = ANY($4)
    ), bars AS (
        -- Adjusted here, on the coordinator, from the factors given (text read back in the
        -- session that wrote it),
        -- once per time an instrument is listed, as 0006 reads them.
        SELECT r.instrument_id, r.ts,
               r.close * marketdata_factor_at(r.ts, f.bounds::timestamptz[],
                                              f.factors::double precision[]) AS close
        FROM unnest($4) AS ids(id)
        JOIN raw r ON r.instrument_id = ids.id
        LEFT JOIN unnest($5, $6, $7) AS f(instrument_id, bounds, factors)
          ON f.instrument_id = r.instrument_id
    ), returns AS (
        SELECT (ts AT TIME ZONE 'UTC')::date AS day, bars.instrument_id,
               (close / previous - 1)::float8 AS ret
        FROM (
            SELECT bars.*, lag(close) OVER (PARTITION BY bars.instrument_id ORDER BY ts)
                   AS previous
            FROM bars
        ) AS bars
        WHERE previous IS NOT NULL AND previous > 0
    ), common AS (
        SELECT returns.day FROM returns GROUP BY returns.day
        HAVING count(*) = cardinality(ARRAY(SELECT DISTINCT unnest($4)))
        ORDER BY returns.day DESC LIMIT $3
    )
    SELECT r.day, r.instrument_id, r.ret FROM returns r JOIN common USING (day)
    ORDER BY r.day, r.instrument_id
    $q$, daily_source)
    USING p_known_at, p_as_of, p_lookback, p_instruments, factor_ids, factor_bounds, factors;
END
$$;
