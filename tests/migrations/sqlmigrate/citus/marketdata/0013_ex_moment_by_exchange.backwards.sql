BEGIN;
--
-- Raw SQL operation
--
-- Corporate actions (marketdata 0012): splits, cash and stock dividends, spin-offs and
-- delistings (marketdata_corporateaction), known from when the system learnt them. Prices are
-- stored as traded; reads adjust them by the actions as known at a moment:
--
-- * marketdata_action_set(...) states an action; stating what is current changes nothing,
--   other terms for the same instrument, kind and ex-date close the current version
--   (known_until) and add the new one. marketdata_action_withdraw(...) closes one. The loaders
--   call them; the application's role writes the table no other way.
-- * marketdata_action_factors(adjustment, known_at): per instrument, the ex-dates (at 00:00
--   UTC) of the actions in effect then (ex-date reached) that adjust its prices, and for each
--   span between them the factors that back-adjust a price (and a volume) to the latest one:
--   the product of the factors of every later ex-date. A read finds a row's span with
--   width_bucket, a binary search.
--     split     price x 1/ratio, volume x ratio ('split' and 'total_return')
--     stock dividend  price x 1/(1 + ratio), volume x (1 + ratio) (both)
--     cash dividend   price x (1 - amount / the close before the ex-date) ('total_return')
--     spin-off  price x (1 - cost_fraction) ('total_return')
--   A dividend whose close before the ex-date is unknown (none in the fortnight before it),
--   or not above it, adjusts nothing.
-- * marketdata_minutebar_adjusted / marketdata_dailybar_adjusted(adjustment, known_at): the
--   table's rows as known at known_at (NULL: now), adjusted; plain SQL that PostgreSQL
--   inlines, so a read's filters reach the bars' (instrument, ts) key and the instrument's
--   factors alone are computed.

CREATE OR REPLACE FUNCTION marketdata_actions_known_at(known_at timestamptz)
RETURNS SETOF marketdata_corporateaction
LANGUAGE sql STABLE AS $$
    SELECT * FROM marketdata_corporateaction a
    WHERE CASE WHEN $1 IS NULL THEN a.known_until IS NULL
               ELSE a.known_from <= $1 AND (a.known_until IS NULL OR a.known_until > $1) END
$$;

-- An action a restatement replaced is closed, never edited nor deleted (by the owner either):
-- what a run adjusted by stays readable.
CREATE OR REPLACE FUNCTION marketdata_action_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'corporate action %: an action is never deleted (withdraw it)', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.known_until IS NOT NULL
       OR (to_jsonb(NEW) - 'known_until') IS DISTINCT FROM (to_jsonb(OLD) - 'known_until') THEN
        RAISE EXCEPTION 'corporate action %: an action is only ever closed (known_until), never'
            ' edited: state it again with its new terms', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER marketdata_action_kept
    BEFORE UPDATE OR DELETE ON marketdata_corporateaction
    FOR EACH ROW EXECUTE FUNCTION marketdata_action_kept();

-- State an action: 'unchanged' when the current one has these terms, 'restated' when it had
-- others (closed now, the new one added), 'inserted' when there was none.
CREATE OR REPLACE FUNCTION marketdata_action_set(
    p_instrument bigint, p_kind text, p_ex_date date, p_ratio numeric, p_amount numeric,
    p_currency text, p_pay_date date, p_new_instrument bigint, p_cost_fraction numeric,
    p_final_price numeric
) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    current marketdata_corporateaction;
    traded_in text;
BEGIN
    -- NaN passes a CHECK (numeric orders it above every number): never a term.
    IF 'NaN' IN (p_ratio, p_amount, p_cost_fraction, p_final_price) THEN
        RAISE EXCEPTION 'corporate action of instrument % on %: NaN is not a number it states',
            p_instrument, p_ex_date USING ERRCODE = 'check_violation';
    END IF;
    -- Compared as the columns store them, so that stating the same terms with more digits
    -- than a column holds changes nothing.
    p_ratio := round(p_ratio, 10);
    p_amount := round(p_amount, 8);
    p_cost_fraction := round(p_cost_fraction, 10);
    p_final_price := round(p_final_price, 8);
    -- Two writers of one action take turns (the second then finds the first's version).
    PERFORM pg_advisory_xact_lock(hashtext('qvp-action:' || p_instrument || ':' || p_kind),
                                  p_ex_date - date '2000-01-01');
    -- A dividend adjusts prices in the currency they trade in: its own must be that one.
    IF p_kind = 'cash_dividend' THEN
        SELECT coalesce((SELECT l.currency FROM marketdata_listings_known_at(NULL) l
                         WHERE l.instrument_id = p_instrument
                           AND daterange(l.valid_from, l.valid_until) @> p_ex_date),
                        i.currency)
        INTO traded_in FROM marketdata_instrument i WHERE i.id = p_instrument;
        IF traded_in IS DISTINCT FROM p_currency THEN
            RAISE EXCEPTION 'cash dividend of instrument % on %: paid in %, but it trades in %',
                p_instrument, p_ex_date, coalesce(p_currency, 'no currency'), traded_in
                USING ERRCODE = 'check_violation', CONSTRAINT = 'action_dividend_currency';
        END IF;
    END IF;
    SELECT * INTO current FROM marketdata_corporateaction
    WHERE instrument_id = p_instrument AND kind = p_kind AND ex_date = p_ex_date
      AND known_until IS NULL
    FOR UPDATE;
    IF FOUND AND (current.ratio, current.amount, current.currency, current.pay_date,
                  current.new_instrument_id, current.cost_fraction, current.final_price)
                 IS NOT DISTINCT FROM (p_ratio, p_amount, coalesce(p_currency, ''), p_pay_date,
                  p_new_instrument, p_cost_fraction, p_final_price) THEN
        RETURN 'unchanged';
    END IF;
    IF FOUND THEN
        UPDATE marketdata_corporateaction SET known_until = now() WHERE id = current.id;
    END IF;
    INSERT INTO marketdata_corporateaction (instrument_id, kind, ex_date, ratio, amount,
        currency, pay_date, new_instrument_id, cost_fraction, final_price, known_until)
    VALUES (p_instrument, p_kind, p_ex_date, p_ratio, p_amount, coalesce(p_currency, ''),
        p_pay_date, p_new_instrument, p_cost_fraction, p_final_price, NULL);
    RETURN CASE WHEN current.id IS NOT NULL THEN 'restated' ELSE 'inserted' END;
END
$$;
REVOKE ALL ON FUNCTION marketdata_action_set(bigint, text, date, numeric, numeric, text, date,
    bigint, numeric, numeric) FROM PUBLIC;

-- Withdraw an action (announced, then cancelled): closed now; false when none is current.
CREATE OR REPLACE FUNCTION marketdata_action_withdraw(
    p_instrument bigint, p_kind text, p_ex_date date
) RETURNS boolean
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
    WITH closed AS (
        UPDATE marketdata_corporateaction SET known_until = now()
        WHERE instrument_id = p_instrument AND kind = p_kind AND ex_date = p_ex_date
          AND known_until IS NULL
        RETURNING id
    )
    SELECT EXISTS (SELECT 1 FROM closed);
$$;
REVOKE ALL ON FUNCTION marketdata_action_withdraw(bigint, text, date) FROM PUBLIC;

-- The close of an instrument's last bar in the fortnight before a moment, minute or daily, as
-- known at p_known_at (NULL: now): each part a backward scan of its (instrument, ts) key, as
-- marketdata/prices.py reads the latest price. The fortnight bounds the partitions each part
-- opens (a year of daily bars, a week of minute bars each) to the one or two it needs; a
-- dividend with no close in the fortnight before its ex-date (a suspension) adjusts nothing.
CREATE OR REPLACE FUNCTION marketdata_close_before(
    p_instrument bigint, p_before timestamptz, p_known_at timestamptz
) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT close FROM (
        (SELECT ts, close FROM marketdata_dailybar
         WHERE instrument_id = p_instrument
           AND ts >= p_before - interval '14 days' AND ts < p_before
           AND (p_known_at IS NULL OR known_from <= p_known_at)
         ORDER BY ts DESC LIMIT 1)
        UNION ALL
        (SELECT ts, close FROM marketdata_dailybarrevision
         WHERE p_known_at IS NOT NULL AND instrument_id = p_instrument
           AND ts >= p_before - interval '14 days' AND ts < p_before
           AND known_from <= p_known_at AND known_until > p_known_at
         ORDER BY ts DESC LIMIT 1)
        UNION ALL
        (SELECT ts, close FROM marketdata_minutebar
         WHERE instrument_id = p_instrument
           AND ts >= p_before - interval '14 days' AND ts < p_before
           AND (p_known_at IS NULL OR known_from <= p_known_at)
         ORDER BY ts DESC LIMIT 1)
        UNION ALL
        (SELECT ts, close FROM marketdata_minutebarrevision
         WHERE p_known_at IS NOT NULL AND instrument_id = p_instrument
           AND ts >= p_before - interval '14 days' AND ts < p_before
           AND known_from <= p_known_at AND known_until > p_known_at
         ORDER BY ts DESC LIMIT 1)
    ) AS candidates
    ORDER BY ts DESC LIMIT 1
$$;

-- The moment an ex-date takes effect: 00:00 UTC of that day, so that every bar of the day
-- (a US or an Asian session lies within its UTC date) and none before it trades ex.
CREATE OR REPLACE FUNCTION marketdata_ex_moment(p_ex_date date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_ex_date::timestamp AT TIME ZONE 'UTC'
$$;

CREATE OR REPLACE FUNCTION marketdata_action_factors(p_adjustment text, p_known_at timestamptz)
RETURNS TABLE (instrument_id bigint, bounds timestamptz[], price_factors double precision[],
               volume_factors double precision[])
LANGUAGE sql STABLE AS $$
    WITH steps AS (
        -- Each ex-date's factors, as logarithms (several actions on a day multiply).
        SELECT a.instrument_id, marketdata_ex_moment(a.ex_date) AS bound,
               sum(CASE a.kind
                       WHEN 'split' THEN -ln(a.ratio::double precision)
                       WHEN 'stock_dividend' THEN -ln(1 + a.ratio::double precision)
                       WHEN 'cash_dividend' THEN
                           CASE WHEN c.close > a.amount
                                THEN ln(1 - a.amount::double precision / c.close) END
                       WHEN 'spin_off' THEN ln(1 - a.cost_fraction::double precision)
                   END) AS log_price,
               sum(CASE a.kind
                       WHEN 'split' THEN ln(a.ratio::double precision)
                       WHEN 'stock_dividend' THEN ln(1 + a.ratio::double precision)
                   END) AS log_volume
        FROM marketdata_actions_known_at(p_known_at) a
        -- A dividend's close before its ex-date: marketdata_close_before's rule, written out
        -- so that PostgreSQL plans it with the rest (a function called per dividend costs
        -- several times as much).
        LEFT JOIN LATERAL (
            SELECT candidates.close FROM (
                (SELECT ts, close FROM marketdata_dailybar
                 WHERE a.kind = 'cash_dividend' AND instrument_id = a.instrument_id
                   AND ts >= marketdata_ex_moment(a.ex_date) - interval '14 days'
                   AND ts < marketdata_ex_moment(a.ex_date)
                   AND (p_known_at IS NULL OR known_from <= p_known_at)
                 ORDER BY ts DESC LIMIT 1)
                UNION ALL
                (SELECT ts, close FROM marketdata_dailybarrevision
                 WHERE a.kind = 'cash_dividend' AND p_known_at IS NOT NULL
                   AND instrument_id = a.instrument_id
                   AND ts >= marketdata_ex_moment(a.ex_date) - interval '14 days'
                   AND ts < marketdata_ex_moment(a.ex_date)
                   AND known_from <= p_known_at AND known_until > p_known_at
                 ORDER BY ts DESC LIMIT 1)
                UNION ALL
                (SELECT ts, close FROM marketdata_minutebar
                 WHERE a.kind = 'cash_dividend' AND instrument_id = a.instrument_id
                   AND ts >= marketdata_ex_moment(a.ex_date) - interval '14 days'
                   AND ts < marketdata_ex_moment(a.ex_date)
                   AND (p_known_at IS NULL OR known_from <= p_known_at)
                 ORDER BY ts DESC LIMIT 1)
                UNION ALL
                (SELECT ts, close FROM marketdata_minutebarrevision
                 WHERE a.kind = 'cash_dividend' AND p_known_at IS NOT NULL
                   AND instrument_id = a.instrument_id
                   AND ts >= marketdata_ex_moment(a.ex_date) - interval '14 days'
                   AND ts < marketdata_ex_moment(a.ex_date)
                   AND known_from <= p_known_at AND known_until > p_known_at
                 ORDER BY ts DESC LIMIT 1)
            ) AS candidates
            ORDER BY candidates.ts DESC LIMIT 1
        ) AS c ON true
        WHERE (a.kind IN ('split', 'stock_dividend')
               AND p_adjustment IN ('split', 'total_return')
               OR a.kind IN ('cash_dividend', 'spin_off') AND p_adjustment = 'total_return')
          -- In effect by then: an action announced for a later ex-date leaves the latest
          -- price as traded until that day.
          AND marketdata_ex_moment(a.ex_date) <= coalesce(p_known_at, now())
        GROUP BY a.instrument_id, a.ex_date
    ),
    later AS (
        -- The factor of a span: every ex-date from its end on (sums of logarithms, so that a
        -- window does it; NULL, a dividend with no close before it, counts as 1).
        SELECT s.instrument_id, s.bound,
               exp(coalesce(sum(s.log_price) OVER w, 0)) AS price,
               exp(coalesce(sum(s.log_volume) OVER w, 0)) AS volume
        FROM steps s
        WINDOW w AS (PARTITION BY s.instrument_id ORDER BY s.bound DESC)
    )
    SELECT l.instrument_id, array_agg(l.bound ORDER BY l.bound),
           array_agg(l.price ORDER BY l.bound) || 1::double precision,
           array_agg(l.volume ORDER BY l.bound) || 1::double precision
    FROM later l
    GROUP BY l.instrument_id
$$;

-- A price's factor at a moment from an instrument's factors: the span it falls in (the number
-- of ex-dates at or before it, by binary search), 1 where the instrument has none.
CREATE OR REPLACE FUNCTION marketdata_factor_at(
    p_ts timestamptz, p_bounds timestamptz[], p_factors double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(p_factors[width_bucket(p_ts, p_bounds) + 1], 1)
$$;

-- A share held at p_as_of in shares of the bar at p_ts: the product of the splits and stock
-- dividends (known at p_known_at, in effect by then) with ex-dates after p_ts and by p_as_of.
-- The bar's price times it values a share held at p_as_of: the morning a 2:1 split goes ex,
-- before the first bar after it, a position holds twice the shares at half the last close.
CREATE OR REPLACE FUNCTION marketdata_shares_factor(
    p_instrument bigint, p_ts timestamptz, p_as_of timestamptz, p_known_at timestamptz
) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT marketdata_factor_at(p_ts, f.bounds, f.price_factors)
               / marketdata_factor_at(p_as_of, f.bounds, f.price_factors)
        FROM marketdata_action_factors('split', p_known_at) AS f
        WHERE f.instrument_id = p_instrument), 1)
$$;

CREATE OR REPLACE FUNCTION marketdata_dailybar_adjusted(p_adjustment text, p_known_at timestamptz)
RETURNS SETOF marketdata_dailybar
LANGUAGE sql STABLE AS $$
    SELECT b.id, b.ts,
           b.open * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.high * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.low * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.close * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.volume * marketdata_factor_at(b.ts, f.bounds, f.volume_factors),
           b.vwap * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.trade_count, b.instrument_id, b.known_from
    FROM (SELECT * FROM marketdata_dailybar WHERE p_known_at IS NULL
          UNION ALL
          SELECT * FROM marketdata_dailybar_known_at(p_known_at) WHERE p_known_at IS NOT NULL
    ) AS b
    LEFT JOIN marketdata_action_factors(p_adjustment, p_known_at) AS f
      ON f.instrument_id = b.instrument_id
$$;

CREATE OR REPLACE FUNCTION marketdata_minutebar_adjusted(p_adjustment text, p_known_at timestamptz)
RETURNS SETOF marketdata_minutebar
LANGUAGE sql STABLE AS $$
    SELECT b.id, b.ts,
           b.open * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.high * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.low * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.close * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.volume * marketdata_factor_at(b.ts, f.bounds, f.volume_factors),
           b.vwap * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.trade_count, b.instrument_id, b.known_from
    FROM (SELECT * FROM marketdata_minutebar WHERE p_known_at IS NULL
          UNION ALL
          SELECT * FROM marketdata_minutebar_known_at(p_known_at) WHERE p_known_at IS NOT NULL
    ) AS b
    LEFT JOIN marketdata_action_factors(p_adjustment, p_known_at) AS f
      ON f.instrument_id = b.instrument_id
$$;

DROP FUNCTION IF EXISTS marketdata_ex_moment(bigint, date),
    marketdata_ex_moment_in(date, text), marketdata_exchange_time_zone(bigint, date),
    marketdata_dailybar_adjusted(text, timestamptz, timestamptz),
    marketdata_minutebar_adjusted(text, timestamptz, timestamptz),
    marketdata_action_factors(text, timestamptz, timestamptz);
DROP TABLE IF EXISTS marketdata_exchange;

COMMIT;
