BEGIN;
--
-- Raw SQL operation
--

CREATE OR REPLACE VIEW trading_metrics WITH (security_invoker = true) AS
WITH day AS (
    SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS starts
),
today AS (
    SELECT e.* FROM trading_execution e, day WHERE e.executed_at >= day.starts
),
-- Executions that stand: fills and corrections no bust or later correction replaced.
standing AS (
    SELECT t.account_id, count(*) AS trades, sum(abs(t.quantity)) AS volume,
           sum(abs(t.quantity * t.price)) AS notional
    FROM today t
    WHERE t.kind IN ('fill', 'correction')
      AND NOT EXISTS (SELECT 1 FROM trading_execution s WHERE s.supersedes_id = t.id)
    GROUP BY t.account_id
),
activity AS (
    SELECT account_id, count(*) FILTER (WHERE kind = 'bust') AS busts,
           count(*) FILTER (WHERE kind = 'correction') AS corrections,
           sum(fee) AS fees, max(executed_at) AS last_execution_at
    FROM today GROUP BY account_id
),
-- Realised P&L of the day per position: where its running total stood after its last
-- execution of the day, less where it stood just before its first one.
bounds AS (
    SELECT account_id, instrument_id, min(position_sequence) AS first_seq,
           max(position_sequence) AS last_seq
    FROM today GROUP BY account_id, instrument_id
),
realized AS (
    SELECT b.account_id,
           sum(coalesce(after.position_realized_pnl_after, 0)
               - coalesce(before.position_realized_pnl_after, 0)) AS realized_pnl
    FROM bounds b
    LEFT JOIN trading_execution after
           ON after.account_id = b.account_id AND after.instrument_id = b.instrument_id
          AND after.position_sequence = b.last_seq
    LEFT JOIN LATERAL (
        SELECT p.position_realized_pnl_after FROM trading_execution p
        WHERE p.account_id = b.account_id AND p.instrument_id = b.instrument_id
          AND p.position_sequence < b.first_seq
        ORDER BY p.position_sequence DESC LIMIT 1
    ) before ON true
    GROUP BY b.account_id
),
snapshot AS (
    SELECT DISTINCT ON (s.account_id) s.account_id, s.ts, s.nav, s.daily_pnl
    FROM trading_portfoliosnapshot s, day WHERE s.ts >= day.starts
    ORDER BY s.account_id, s.ts DESC
)
SELECT a.id AS account_id, a.name AS account, (SELECT starts FROM day) AS day_starts,
       coalesce(st.trades, 0)::bigint AS trades,
       coalesce(ac.busts, 0)::bigint AS busts,
       coalesce(ac.corrections, 0)::bigint AS corrections,
       coalesce(st.volume, 0) AS volume,
       coalesce(st.notional, 0) AS notional,
       coalesce(ac.fees, 0) AS fees,
       coalesce(r.realized_pnl, 0) AS realized_pnl,
       coalesce(r.realized_pnl, 0) - coalesce(ac.fees, 0) AS realized_pnl_after_fees,
       sn.nav, sn.daily_pnl, sn.ts AS snapshot_at, ac.last_execution_at
FROM trading_account a
LEFT JOIN standing st ON st.account_id = a.id
LEFT JOIN activity ac ON ac.account_id = a.id
LEFT JOIN realized r ON r.account_id = a.id
LEFT JOIN snapshot sn ON sn.account_id = a.id;

DO $$
DECLARE role_name text;
BEGIN
    FOR role_name IN SELECT rolname FROM pg_roles
                     WHERE rolname IN ('trading_app', 'trading_readonly') LOOP
        EXECUTE format('GRANT SELECT ON trading_metrics TO %I', role_name);
    END LOOP;
END $$;

COMMIT;
