-- Version 0009 of risk_holdings, on Citus only (risk 0009): version 0006's, the same answers,
-- in PL/pgSQL. Elsewhere 0006's text stays.
--
-- 0006 writes it in SQL, which PostgreSQL inlines: a lateral lookup of each holding's latest
-- bar from the books' holdings. Citus refuses both: a SQL function with parameters over its
-- distributed tables, and a lateral lookup into them from a coordinator's table. In PL/pgSQL
-- each statement is planned by Citus on its own, with the parameters' values: the holdings
-- are read from the books first, then their latest bars looked up from the instruments' keys,
-- distributed beside the bars (as marketdata.prices' on Citus), each on the shard that holds
-- the instrument. As known at a time, the tables' <table>_known_at body is written out
-- (Citus plans no SQL function over a distributed table), $1 the moment.

CREATE OR REPLACE FUNCTION risk_holdings(
    p_account bigint, p_as_of timestamptz, p_known_at timestamptz DEFAULT NULL
)
RETURNS TABLE (instrument_id bigint, quantity float8, price float8, value float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    held_ids bigint[];
    held_quantities numeric[];
    minute_source text := CASE WHEN p_known_at IS NULL THEN 'marketdata_minutebar'
        ELSE '(SELECT * FROM marketdata_minutebar_history WHERE known_from <= $1'
             ' AND (known_until IS NULL OR known_until > $1))' END;
    daily_source text := CASE WHEN p_known_at IS NULL THEN 'marketdata_dailybar'
        ELSE '(SELECT * FROM marketdata_dailybar_history WHERE known_from <= $1'
             ' AND (known_until IS NULL OR known_until > $1))' END;
BEGIN
    -- The books' holdings (coordinator tables), then their prices looked up on the shards.
    SELECT coalesce(array_agg(t.instrument_id), '{}'), coalesce(array_agg(t.quantity), '{}')
    INTO held_ids, held_quantities
    FROM trading_held_at(p_account, p_as_of, p_known_at) t;
    RETURN QUERY EXECUTE format($q$
    WITH latest AS MATERIALIZED (
        SELECT k.id AS instrument_id, l.ts, l.close
        FROM marketdata_instrument_key k
        CROSS JOIN LATERAL (
            SELECT ts, close FROM (
                (SELECT ts, close FROM %1$s m
                 WHERE m.instrument_id = k.id AND m.ts <= $2 ORDER BY m.ts DESC LIMIT 1)
                UNION ALL
                (SELECT ts, close FROM %2$s d
                 WHERE d.instrument_id = k.id AND d.ts <= $2 ORDER BY d.ts DESC LIMIT 1)
            ) AS candidates
            ORDER BY ts DESC LIMIT 1
        ) AS l
        WHERE k.id = ANY($3)
    )
    SELECT h.instrument_id, h.quantity::float8, priced.price,
           (h.quantity * i.multiplier)::float8 * priced.price
    FROM unnest($3, $4) AS h(instrument_id, quantity)
    JOIN marketdata_instrument i ON i.id = h.instrument_id
    JOIN latest ON latest.instrument_id = h.instrument_id
    -- A split since the last bar: the shares held are priced in its shares.
    CROSS JOIN LATERAL (
        SELECT latest.close::float8
               * marketdata_shares_factor(h.instrument_id, latest.ts, $2, $1) AS price
    ) AS priced
    ORDER BY h.instrument_id
    $q$, minute_source,
         daily_source)
    USING p_known_at, p_as_of, held_ids, held_quantities;
END
$$;
