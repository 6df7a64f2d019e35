-- Version 0020 (trading 0020), on Citus alone: the pending refresh of trading/sql/tca/0016.sql,
-- which first gathers the market data's changes up to its moment into the queue
-- (trading/sql/tca_gather_on_citus/0020.sql says why); otherwise the same.
CREATE OR REPLACE FUNCTION trading_tca_refresh_pending(p_known_at timestamptz)
RETURNS TABLE (ranges bigint, written bigint, removed bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
#variable_conflict use_column
DECLARE
    starts timestamptz[];
    ends timestamptz[];
    accounts bigint[];
    instruments bigint[];
BEGIN
    IF p_known_at IS NULL THEN
        RAISE EXCEPTION 'trading_tca_refresh_pending: known_at is required'
            ' (marketdata_settled_at())' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM trading_tca_gather(p_known_at);
    WITH taken AS (
        DELETE FROM trading_tcapending q
        WHERE q.stamp IS NULL OR q.stamp <= p_known_at
        RETURNING q.first_at, q.end_at, q.account_id, q.instrument_id
    )
    SELECT count(*), array_agg(t.first_at), array_agg(t.end_at), array_agg(t.account_id),
           array_agg(t.instrument_id)
    INTO ranges, starts, ends, accounts, instruments
    FROM taken t;
    written := 0;
    removed := 0;
    IF ranges > 0 THEN
        SELECT r.written, r.removed INTO written, removed
        FROM trading_tca_restate(starts, ends, accounts, instruments, p_known_at) r;
    END IF;
    RETURN NEXT;
END
$$;
