BEGIN;
--
-- Raw SQL operation
--

DROP FUNCTION IF EXISTS risk_snapshot_returns(bigint, timestamptz, integer, timestamptz);
-- Risk functions for SQL users. The Python services (risk/var.py, risk/performance.py,
-- risk/volatility.py, risk/factors.py) read their inputs through the same helper functions, so
-- both sides see the same data and the tests hold them to the same answers.
--
-- Version 0004: every read of market data and of the books may be made as the system knew it
-- at a time, p_known_at (NULL, the default: the present). Bars come from
-- marketdata_<table>_known_at(p_known_at) (their revisions, marketdata/sql/revisions/0009.sql),
-- holdings from the executions booked by then (trading_execution.created_at <= p_known_at: a
-- bust or a correction booked later is left out). Snapshots keep no history: what reads them
-- (risk_snapshot_returns) reads them as they are. p_as_of stays the valuation time.

-- The old signatures go first: a new trailing argument with a default would otherwise make
-- every call that names fewer arguments ambiguous between the two.
DROP FUNCTION IF EXISTS calculate_portfolio_metrics(bigint, integer, text, float8, timestamptz);
DROP FUNCTION IF EXISTS calculate_var(float8, integer);
DROP FUNCTION IF EXISTS calculate_var(bigint, float8, integer, timestamptz);
DROP FUNCTION IF EXISTS risk_daily_returns(bigint[], timestamptz, integer);
DROP FUNCTION IF EXISTS risk_holdings(bigint, timestamptz);

-- The standard normal's quantile: Acklam's rational approximation, polished by one Halley
-- step on erfc (PostgreSQL 16+), which brings it to double precision.
CREATE OR REPLACE FUNCTION risk_norm_ppf(p float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    a float8[] := ARRAY[-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                        1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
    b float8[] := ARRAY[-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                        6.680131188771972e+01, -1.328068155288572e+01];
    c float8[] := ARRAY[-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                        -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
    d float8[] := ARRAY[7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                        3.754408661907416e+00];
    q float8; r float8; x float8; e float8; u float8;
BEGIN
    IF p <= 0 OR p >= 1 THEN
        RAISE EXCEPTION 'risk_norm_ppf: p must be between 0 and 1, got %', p
            USING ERRCODE = '22023';
    END IF;
    IF p < 0.02425 THEN
        q := sqrt(-2 * ln(p));
        x := (((((c[1]*q + c[2])*q + c[3])*q + c[4])*q + c[5])*q + c[6])
             / ((((d[1]*q + d[2])*q + d[3])*q + d[4])*q + 1);
    ELSIF p <= 1 - 0.02425 THEN
        q := p - 0.5; r := q * q;
        x := (((((a[1]*r + a[2])*r + a[3])*r + a[4])*r + a[5])*r + a[6]) * q
             / (((((b[1]*r + b[2])*r + b[3])*r + b[4])*r + b[5])*r + 1);
    ELSE
        q := sqrt(-2 * ln(1 - p));
        x := -(((((c[1]*q + c[2])*q + c[3])*q + c[4])*q + c[5])*q + c[6])
             / ((((d[1]*q + d[2])*q + d[3])*q + d[4])*q + 1);
    END IF;
    e := 0.5 * erfc(-x / sqrt(2)) - p;
    u := e * sqrt(2 * pi()) * exp(x * x / 2);
    RETURN x - u / (1 + x * u / 2);
END;
$$;

-- A bar table as known at p_known_at, or as it is now when p_known_at is NULL. Plain SQL,
-- inlined into the query that calls it: the branch not taken is a one-time filter that is never
-- run, and a filter on instrument and time reaches the indexes of the table (and of its
-- revisions).
CREATE OR REPLACE FUNCTION risk_dailybars(p_known_at timestamptz)
RETURNS SETOF marketdata_dailybar LANGUAGE sql STABLE AS $$
    SELECT * FROM marketdata_dailybar WHERE p_known_at IS NULL
    UNION ALL
    SELECT * FROM marketdata_dailybar_known_at(p_known_at) WHERE p_known_at IS NOT NULL
$$;

CREATE OR REPLACE FUNCTION risk_minutebars(p_known_at timestamptz)
RETURNS SETOF marketdata_minutebar LANGUAGE sql STABLE AS $$
    SELECT * FROM marketdata_minutebar WHERE p_known_at IS NULL
    UNION ALL
    SELECT * FROM marketdata_minutebar_known_at(p_known_at) WHERE p_known_at IS NOT NULL
$$;

-- What an account holds as of a time: the executions in force then (fills and corrections,
-- less those a bust or a correction had replaced by then: the rule of trading/snapshots.py),
-- summed per instrument, each valued at the latest close at or before the time
-- (marketdata.prices' lookup) times the instrument's multiplier. Holdings with no price by
-- then are left out. Never the current positions: a VaR as of last month is last month's.
-- As known at p_known_at: the executions booked by then, the prices known then.
CREATE OR REPLACE FUNCTION risk_holdings(
    p_account bigint, p_as_of timestamptz, p_known_at timestamptz DEFAULT NULL
)
RETURNS TABLE (instrument_id bigint, quantity float8, price float8, value float8)
LANGUAGE sql STABLE AS $$
    WITH held AS (
        SELECT x.instrument_id, sum(x.quantity) AS quantity
        FROM trading_execution x
        WHERE x.account_id = p_account AND x.executed_at <= p_as_of AND x.kind <> 'bust'
          AND (p_known_at IS NULL OR x.created_at <= p_known_at)
          AND NOT EXISTS (SELECT 1 FROM trading_execution s
                          WHERE s.supersedes_id = x.id AND s.executed_at <= p_as_of
                            AND (p_known_at IS NULL OR s.created_at <= p_known_at))
        GROUP BY x.instrument_id
        HAVING sum(x.quantity) <> 0
    )
    SELECT h.instrument_id, h.quantity::float8, latest.close::float8,
           (h.quantity * i.multiplier)::float8 * latest.close::float8
    FROM held h
    JOIN marketdata_instrument i ON i.id = h.instrument_id
    CROSS JOIN LATERAL (
        SELECT ts, close FROM (
            (SELECT ts, close FROM risk_minutebars(p_known_at)
             WHERE instrument_id = h.instrument_id AND ts <= p_as_of ORDER BY ts DESC LIMIT 1)
            UNION ALL
            (SELECT ts, close FROM risk_dailybars(p_known_at)
             WHERE instrument_id = h.instrument_id AND ts <= p_as_of ORDER BY ts DESC LIMIT 1)
        ) AS candidates
        ORDER BY ts DESC LIMIT 1
    ) AS latest
    ORDER BY h.instrument_id
$$;

-- Daily simple returns of instruments: from each one's last p_lookback + 1 daily bars at or
-- before p_as_of (as known at p_known_at), the days on which every one of them has a return,
-- the latest p_lookback.
CREATE OR REPLACE FUNCTION risk_daily_returns(
    p_instruments bigint[], p_as_of timestamptz, p_lookback integer,
    p_known_at timestamptz DEFAULT NULL
) RETURNS TABLE (day date, instrument_id bigint, ret float8)
LANGUAGE sql STABLE AS $$
    WITH bars AS (
        SELECT ids.id AS instrument_id, b.ts, b.close,
               lag(b.close) OVER (PARTITION BY ids.id ORDER BY b.ts) AS previous
        FROM unnest(p_instruments) AS ids(id)
        CROSS JOIN LATERAL (
            SELECT ts, close FROM risk_dailybars(p_known_at)
            WHERE instrument_id = ids.id AND ts <= p_as_of
            ORDER BY ts DESC LIMIT p_lookback + 1
        ) AS b
    ), returns AS (
        SELECT (ts AT TIME ZONE 'UTC')::date AS day, instrument_id,
               (close / previous - 1)::float8 AS ret
        FROM bars WHERE previous IS NOT NULL AND previous > 0
    ), common AS (
        SELECT day FROM returns GROUP BY day
        HAVING count(*) = cardinality(ARRAY(SELECT DISTINCT unnest(p_instruments)))
        ORDER BY day DESC LIMIT p_lookback
    )
    SELECT r.day, r.instrument_id, r.ret FROM returns r JOIN common USING (day)
    ORDER BY r.day, r.instrument_id
$$;

-- Value at risk and expected shortfall of an account's holdings, as positive losses over one
-- day: historical (the (1 - confidence) quantile of the day's P&L had today's holdings been
-- held on each of the lookback days, interpolated linearly as percentile_cont does) and
-- parametric (normal P&L with the sample mean and standard deviation of that same series,
-- which is sqrt(w' S w) for the holdings' covariance S). Holdings and returns as known at
-- p_known_at (NULL: the present), so a VaR of a stored run can be repeated to the last digit.
CREATE OR REPLACE FUNCTION calculate_var(
    p_account bigint,
    p_confidence float8 DEFAULT 0.95,
    p_lookback_days integer DEFAULT 252,
    p_as_of timestamptz DEFAULT now(),
    p_known_at timestamptz DEFAULT NULL
) RETURNS TABLE (
    account_id bigint, method text, confidence float8, lookback_days integer,
    observations integer, portfolio_value float8, var float8, cvar float8
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_confidence IS NULL OR NOT (p_confidence > 0 AND p_confidence < 1) THEN
        RAISE EXCEPTION 'confidence must be between 0 and 1 (exclusive), got %', p_confidence
            USING ERRCODE = '22023';
    END IF;
    IF p_lookback_days IS NULL OR p_lookback_days < 2 THEN
        RAISE EXCEPTION 'lookback_days must be at least 2, got %', p_lookback_days
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH h AS (
        SELECT hh.instrument_id, hh.value FROM risk_holdings(p_account, p_as_of, p_known_at) hh
    ), pnl AS (
        SELECT r.day, sum(h.value * r.ret) AS pnl
        FROM risk_daily_returns(
            (SELECT coalesce(array_agg(h.instrument_id), '{}') FROM h), p_as_of, p_lookback_days,
            p_known_at
        ) r
        JOIN h ON h.instrument_id = r.instrument_id
        GROUP BY r.day
    ), stats AS (
        SELECT count(*)::integer AS n,
               percentile_cont(1 - p_confidence) WITHIN GROUP (ORDER BY pnl.pnl) AS q,
               avg(pnl.pnl) AS mu, stddev_samp(pnl.pnl) AS sigma,
               risk_norm_ppf(p_confidence) AS z,
               (SELECT coalesce(sum(h.value), 0) FROM h) AS total
        FROM pnl
    )
    SELECT p_account, m.method, p_confidence, p_lookback_days, s.n, s.total, m.var, m.cvar
    FROM stats s
    CROSS JOIN LATERAL (VALUES
        ('historical', -s.q, (SELECT -avg(pnl.pnl) FROM pnl WHERE pnl.pnl <= s.q)),
        ('parametric', s.z * s.sigma - s.mu,
         s.sigma * exp(-s.z * s.z / 2) / sqrt(2 * pi()) / (1 - p_confidence) - s.mu)
    ) AS m(method, var, cvar);
END;
$$;

-- The design documents' form: every account the caller may see (row-level security decides),
-- as of p_as_of and as known at p_known_at when given.
CREATE OR REPLACE FUNCTION calculate_var(
    p_confidence float8, p_lookback_days integer,
    p_as_of timestamptz DEFAULT now(), p_known_at timestamptz DEFAULT NULL
)
RETURNS TABLE (
    account_id bigint, method text, confidence float8, lookback_days integer,
    observations integer, portfolio_value float8, var float8, cvar float8
)
LANGUAGE sql STABLE AS $$
    SELECT v.* FROM trading_account a
    CROSS JOIN LATERAL calculate_var(a.id, p_confidence, p_lookback_days, p_as_of, p_known_at) v
    ORDER BY a.id, v.method
$$;

-- An account's daily returns from its portfolio snapshots: each snapshot's P&L (NAV change
-- less deposits and withdrawals) over the previous snapshot's NAV, the latest p_lookback.
CREATE OR REPLACE FUNCTION risk_snapshot_returns(
    p_account bigint, p_as_of timestamptz, p_lookback integer
) RETURNS TABLE (ts timestamptz, day date, ret float8)
LANGUAGE sql STABLE AS $$
    SELECT s.ts, (s.ts AT TIME ZONE 'UTC')::date, s.ret FROM (
        SELECT ts, (daily_pnl / nullif(lag(nav) OVER (ORDER BY ts), 0))::float8 AS ret
        FROM (
            SELECT ts, nav, daily_pnl FROM trading_portfoliosnapshot
            WHERE account_id = p_account AND ts <= p_as_of
            ORDER BY ts DESC LIMIT p_lookback + 1
        ) latest
    ) s
    WHERE s.ret IS NOT NULL
    ORDER BY s.ts
$$;

-- Performance of an account over its last p_lookback_days snapshots, annualised by 252:
-- total return (compounded), volatility, Sharpe and Sortino (over p_risk_free a year; the
-- Sortino denominator is the root mean square of the returns below it), maximum drawdown of
-- the compounded wealth (from 1 at the start), beta to p_benchmark's daily returns on the
-- same days (its bars as known at p_known_at; the snapshots as they are).
CREATE OR REPLACE FUNCTION calculate_portfolio_metrics(
    p_account bigint,
    p_lookback_days integer DEFAULT 252,
    p_benchmark text DEFAULT 'SPY',
    p_risk_free float8 DEFAULT 0,
    p_as_of timestamptz DEFAULT now(),
    p_known_at timestamptz DEFAULT NULL
) RETURNS TABLE (
    account_id bigint, observations integer, total_return float8, volatility float8,
    sharpe float8, sortino float8, max_drawdown float8, beta float8
)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT ts, day, ret, ret - p_risk_free / 252 AS excess,
               exp(sum(ln(1 + ret)) OVER (ORDER BY ts)) AS wealth
        FROM risk_snapshot_returns(p_account, p_as_of, p_lookback_days)
    ), drawdown AS (
        SELECT 1 - wealth / greatest(1, max(wealth) OVER (ORDER BY ts)) AS dd FROM r
    ), bench AS (
        SELECT b.day, b.ret FROM risk_daily_returns(
            ARRAY(SELECT id FROM marketdata_instrument WHERE symbol = p_benchmark),
            p_as_of, p_lookback_days + 10, p_known_at) b
    ), paired AS (
        SELECT r.ret, bench.ret AS bret FROM r JOIN bench USING (day)
    )
    SELECT p_account,
           (SELECT count(*)::integer FROM r),
           (SELECT exp(sum(ln(1 + ret))) - 1 FROM r),
           (SELECT stddev_samp(ret) * sqrt(252) FROM r),
           (SELECT avg(excess) / nullif(stddev_samp(ret), 0) * sqrt(252) FROM r),
           (SELECT avg(excess) / nullif(sqrt(avg(least(excess, 0) ^ 2)), 0) * sqrt(252) FROM r),
           (SELECT coalesce(max(dd), 0) FROM drawdown),
           (SELECT covar_samp(ret, bret) / nullif(var_samp(bret), 0) FROM paired)
$$;

CREATE OR REPLACE FUNCTION calculate_portfolio_metrics()
RETURNS TABLE (
    account_id bigint, observations integer, total_return float8, volatility float8,
    sharpe float8, sortino float8, max_drawdown float8, beta float8
)
LANGUAGE sql STABLE AS $$
    SELECT m.* FROM trading_account a
    CROSS JOIN LATERAL calculate_portfolio_metrics(a.id) m
    ORDER BY a.id
$$;

COMMIT;
