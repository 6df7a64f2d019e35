BEGIN;
--
-- Raw SQL operation
--
-- Version 0013 of corporate actions (marketdata 0013): an action takes effect at its exchange's
-- ex moment. Version 0012 made it 00:00 UTC of the ex-date for every instrument; a daily file
-- loaded with --tz (a Paris or Tokyo vendor's dates) stamps each day at local midnight, so east
-- of UTC the ex-date's own bar lay before 00:00 UTC (at 22:00 or 15:00 UTC the day before) and
-- was adjusted although it traded ex. Now:
--
-- * marketdata_exchange: each exchange's MIC and its time zone, as exchange_calendars 4.13.2
--   gives them (its calendars' names that are MICs, the aliases XNAS, ARCX, BATS, OOTC, XASE and
--   XTSX included; tests/marketdata/test_ex_moment.py checks the table against the library).
--   Written by the owner only (an exchange missing is added by a later migration); both roles
--   read it. A plain table, not a model's: a transactional test's flush empties every model's
--   table, and these rows come from this migration alone.
-- * marketdata_exchange_time_zone(instrument, on): the time zone of the exchange an instrument
--   traded on on a date. The exchange is the security master's MIC for that date (the current
--   version of marketdata_listing holding it) where one is stated, else the instrument's own
--   `exchange` (also where the listing's MIC is none the table knows, a segment's say): the
--   listing is dated, so an instrument that moved to another exchange keeps the
--   ex moments of its past actions, where the instrument's row holds today's exchange only
--   (and is free text before the security master states a MIC). None (unknown or blank): UTC.
--   Read as known now, not at a read's known_at: where the bars were traded is a fact, not a
--   revision, and the old rule read such bars wrongly.
-- * marketdata_ex_moment(instrument, ex_date) = least(00:00 UTC of the ex-date, 00:00 of the
--   ex-date in that time zone). The least: a daily bar loaded without --tz is stamped 00:00 UTC
--   of its date and must count as ex; east of UTC local midnight comes first, and the previous
--   session (minute bars included) ends before it; west of UTC (the US) 00:00 UTC comes first,
--   as in version 0012, and nothing changes. marketdata_ex_moment(ex_date), version 0012's,
--   stays as it is for the callers that still name it.
-- * marketdata_action_factors(adjustment, known_at): its bounds, the close before a dividend and
--   the actions in effect by known_at follow each action's ex moment. The adjusted reads and
--   marketdata_shares_factor call it by name, so they follow without a new version.

CREATE TABLE marketdata_exchange (
    mic varchar(4) PRIMARY KEY CONSTRAINT exchange_mic_code CHECK (mic ~ '^[A-Z0-9]{4}$'),
    -- An unknown zone is refused when written (AT TIME ZONE raises), not when a read meets it.
    time_zone text NOT NULL
        CONSTRAINT exchange_time_zone_known
        CHECK ((timestamp '2000-01-01' AT TIME ZONE time_zone) IS NOT NULL)
);
COMMENT ON TABLE marketdata_exchange IS
    'Each exchange''s MIC and time zone: an action''s ex moment is 00:00 of its ex-date there'
    ' (east of UTC; 00:00 UTC elsewhere). From exchange_calendars; written by migrations.';

INSERT INTO marketdata_exchange (mic, time_zone) VALUES
    ('AIXK', 'Asia/Almaty'),
    ('ARCX', 'America/New_York'),
    ('ASEX', 'Europe/Athens'),
    ('BATS', 'America/New_York'),
    ('BVMF', 'America/Sao_Paulo'),
    ('CMES', 'America/Chicago'),
    ('IEPA', 'America/New_York'),
    ('OOTC', 'America/New_York'),
    ('XAMS', 'Europe/Amsterdam'),
    ('XASE', 'America/New_York'),
    ('XASX', 'Australia/Sydney'),
    ('XBDA', 'Atlantic/Bermuda'),
    ('XBEL', 'Europe/Belgrade'),
    ('XBKK', 'Asia/Bangkok'),
    ('XBOG', 'America/New_York'),
    ('XBOM', 'Asia/Kolkata'),
    ('XBRA', 'Europe/Bratislava'),
    ('XBRU', 'Europe/Brussels'),
    ('XBSE', 'Europe/Bucharest'),
    ('XBUD', 'Europe/Budapest'),
    ('XBUE', 'America/Argentina/Buenos_Aires'),
    ('XCBF', 'America/Chicago'),
    ('XCSE', 'Europe/Copenhagen'),
    ('XCYS', 'Asia/Nicosia'),
    ('XDUB', 'Europe/Dublin'),
    ('XDUS', 'Europe/Brussels'),
    ('XEEE', 'Europe/Berlin'),
    ('XETR', 'Europe/Berlin'),
    ('XEUR', 'Europe/Berlin'),
    ('XFRA', 'Europe/Berlin'),
    ('XHAM', 'Europe/Brussels'),
    ('XHEL', 'Europe/Helsinki'),
    ('XHKG', 'Asia/Hong_Kong'),
    ('XICE', 'Atlantic/Reykjavik'),
    ('XIDX', 'Asia/Jakarta'),
    ('XIST', 'Europe/Istanbul'),
    ('XJSE', 'Africa/Johannesburg'),
    ('XKAR', 'Asia/Karachi'),
    ('XKLS', 'Asia/Kuala_Lumpur'),
    ('XKRX', 'Asia/Seoul'),
    ('XLIM', 'America/Lima'),
    ('XLIS', 'Europe/Lisbon'),
    ('XLIT', 'Europe/Vilnius'),
    ('XLJU', 'Europe/Ljubljana'),
    ('XLON', 'Europe/London'),
    ('XLUX', 'Europe/Luxembourg'),
    ('XMAD', 'Europe/Madrid'),
    ('XMEX', 'America/Mexico_City'),
    ('XMIL', 'Europe/Rome'),
    ('XMOS', 'Europe/Moscow'),
    ('XNAS', 'America/New_York'),
    ('XNYS', 'America/New_York'),
    ('XNZE', 'Pacific/Auckland'),
    ('XOSL', 'Europe/Oslo'),
    ('XPAR', 'Europe/Paris'),
    ('XPHS', 'Asia/Manila'),
    ('XPRA', 'Europe/Prague'),
    ('XRIS', 'Europe/Riga'),
    ('XSAU', 'Asia/Riyadh'),
    ('XSES', 'Asia/Singapore'),
    ('XSGO', 'America/Santiago'),
    ('XSHG', 'Asia/Shanghai'),
    ('XSTO', 'Europe/Stockholm'),
    ('XSTU', 'Europe/Berlin'),
    ('XSWX', 'Europe/Zurich'),
    ('XTAE', 'Asia/Tel_Aviv'),
    ('XTAI', 'Asia/Taipei'),
    ('XTAL', 'Europe/Tallinn'),
    ('XTKS', 'Asia/Tokyo'),
    ('XTSE', 'America/Toronto'),
    ('XTSX', 'America/Toronto'),
    ('XWAR', 'Europe/Warsaw'),
    ('XWBO', 'Europe/Vienna'),
    ('XZAG', 'Europe/Zagreb');

-- The time zone of the exchange p_instrument traded on on p_on (NULL: none known).
CREATE OR REPLACE FUNCTION marketdata_exchange_time_zone(p_instrument bigint, p_on date)
RETURNS TABLE (time_zone text)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(e.time_zone, f.time_zone)
    FROM marketdata_instrument i
    LEFT JOIN marketdata_listing l
      ON l.instrument_id = i.id AND l.known_until IS NULL AND l.mic <> ''
     AND daterange(l.valid_from, l.valid_until) @> p_on
    LEFT JOIN marketdata_exchange e ON e.mic = l.mic
    LEFT JOIN marketdata_exchange f ON f.mic = i.exchange
    WHERE i.id = p_instrument
$$;

-- The ex moment of p_ex_date in p_time_zone (NULL: 00:00 UTC): plain SQL PostgreSQL inlines.
CREATE OR REPLACE FUNCTION marketdata_ex_moment_in(p_ex_date date, p_time_zone text)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(p_ex_date::timestamp AT TIME ZONE 'UTC',
                 p_ex_date::timestamp AT TIME ZONE p_time_zone)
$$;

-- The moment an action of p_instrument with ex-date p_ex_date takes effect: the first bar at or
-- after it trades ex, every bar before it is adjusted.
CREATE OR REPLACE FUNCTION marketdata_ex_moment(p_instrument bigint, p_ex_date date)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT marketdata_ex_moment_in(
        p_ex_date,
        (SELECT z.time_zone FROM marketdata_exchange_time_zone(p_instrument, p_ex_date) AS z))
$$;

-- The factors of the adjusted reads of bars at or after p_from (NULL: all): an ex moment at or
-- before p_from adjusts none of them (a bar is adjusted by the ex moments after it), so its
-- action is left out, and with it a dividend's lookup of its close, the costly part: a read of
-- the last year looks up that year's dividends, not twenty years'. The spans' factors of the
-- bars read are the same.
CREATE OR REPLACE FUNCTION marketdata_action_factors(
    p_adjustment text, p_known_at timestamptz, p_from timestamptz
) RETURNS TABLE (instrument_id bigint, bounds timestamptz[], price_factors double precision[],
                 volume_factors double precision[])
LANGUAGE sql STABLE AS $$
    WITH actions AS (
        -- The actions the adjustment applies, each with its ex moment: the time zone by
        -- marketdata_exchange_time_zone's rule, written out as joins so that PostgreSQL
        -- hash-joins the instruments, listings and exchanges once for all the actions (called
        -- per action, LATERAL, it nearly doubled reading every instrument's year).
        SELECT a.instrument_id, a.ex_date, a.kind, a.ratio, a.amount, a.cost_fraction,
               marketdata_ex_moment_in(a.ex_date, coalesce(z.time_zone, y.time_zone)) AS ex_at
        FROM marketdata_actions_known_at(p_known_at) a
        JOIN marketdata_instrument i ON i.id = a.instrument_id
        LEFT JOIN marketdata_listing l
          ON l.instrument_id = a.instrument_id AND l.known_until IS NULL AND l.mic <> ''
         AND daterange(l.valid_from, l.valid_until) @> a.ex_date
        LEFT JOIN marketdata_exchange z ON z.mic = l.mic
        LEFT JOIN marketdata_exchange y ON y.mic = i.exchange
        WHERE (a.kind IN ('split', 'stock_dividend')
               AND p_adjustment IN ('split', 'total_return')
               OR a.kind IN ('cash_dividend', 'spin_off') AND p_adjustment = 'total_return')
          -- A day's margin on the date: the ex moment, never later than 00:00 UTC of the
          -- ex-date, decides below.
          AND (p_from IS NULL OR a.ex_date > (p_from AT TIME ZONE 'UTC')::date - 1)
    ),
    steps AS (
        -- Each ex moment's factors, as logarithms (several actions on a day multiply).
        SELECT a.instrument_id, a.ex_at AS bound,
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
        FROM actions a
        -- A dividend's close before its ex moment: marketdata_close_before's rule, written out
        -- so that PostgreSQL plans it with the rest (a function called per dividend costs
        -- several times as much).
        LEFT JOIN LATERAL (
            SELECT candidates.close FROM (
                (SELECT ts, close FROM marketdata_dailybar
                 WHERE a.kind = 'cash_dividend' AND instrument_id = a.instrument_id
                   AND ts >= a.ex_at - interval '14 days' AND ts < a.ex_at
                   AND (p_known_at IS NULL OR known_from <= p_known_at)
                 ORDER BY ts DESC LIMIT 1)
                UNION ALL
                (SELECT ts, close FROM marketdata_dailybarrevision
                 WHERE a.kind = 'cash_dividend' AND p_known_at IS NOT NULL
                   AND instrument_id = a.instrument_id
                   AND ts >= a.ex_at - interval '14 days' AND ts < a.ex_at
                   AND known_from <= p_known_at AND known_until > p_known_at
                 ORDER BY ts DESC LIMIT 1)
                UNION ALL
                (SELECT ts, close FROM marketdata_minutebar
                 WHERE a.kind = 'cash_dividend' AND instrument_id = a.instrument_id
                   AND ts >= a.ex_at - interval '14 days' AND ts < a.ex_at
                   AND (p_known_at IS NULL OR known_from <= p_known_at)
                 ORDER BY ts DESC LIMIT 1)
                UNION ALL
                (SELECT ts, close FROM marketdata_minutebarrevision
                 WHERE a.kind = 'cash_dividend' AND p_known_at IS NOT NULL
                   AND instrument_id = a.instrument_id
                   AND ts >= a.ex_at - interval '14 days' AND ts < a.ex_at
                   AND known_from <= p_known_at AND known_until > p_known_at
                 ORDER BY ts DESC LIMIT 1)
            ) AS candidates
            ORDER BY candidates.ts DESC LIMIT 1
        ) AS c ON true
        -- In effect by then: an action announced for a later ex-date leaves the latest price
        -- as traded until its ex moment.
        WHERE a.ex_at <= coalesce(p_known_at, now())
          AND (p_from IS NULL OR a.ex_at > p_from)
        GROUP BY a.instrument_id, a.ex_at
    ),
    later AS (
        -- The factor of a span: every ex moment from its end on (sums of logarithms, so that a
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

-- Every action's factors (the readers of whole histories: risk, the shares factor, loads).
CREATE OR REPLACE FUNCTION marketdata_action_factors(p_adjustment text, p_known_at timestamptz)
RETURNS TABLE (instrument_id bigint, bounds timestamptz[], price_factors double precision[],
               volume_factors double precision[])
LANGUAGE sql STABLE AS $$
    SELECT * FROM marketdata_action_factors(p_adjustment, p_known_at, NULL)
$$;

-- The adjusted reads of bars at or after p_from (the queryset passes its lower bound on ts:
-- marketdata/querysets.py); the rows before it, if read, are not adjusted right. One text for
-- both bar tables.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['marketdata_dailybar', 'marketdata_minutebar'] LOOP
        EXECUTE format($sql$
CREATE OR REPLACE FUNCTION %1$I(p_adjustment text, p_known_at timestamptz, p_from timestamptz)
RETURNS SETOF %2$I
LANGUAGE sql STABLE AS $body$
    SELECT b.id, b.ts,
           b.open * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.high * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.low * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.close * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.volume * marketdata_factor_at(b.ts, f.bounds, f.volume_factors),
           b.vwap * marketdata_factor_at(b.ts, f.bounds, f.price_factors),
           b.trade_count, b.instrument_id, b.known_from
    FROM (SELECT * FROM %2$I WHERE p_known_at IS NULL
          UNION ALL
          SELECT * FROM %3$I(p_known_at) WHERE p_known_at IS NOT NULL
    ) AS b
    LEFT JOIN marketdata_action_factors(p_adjustment, p_known_at, p_from) AS f
      ON f.instrument_id = b.instrument_id
$body$
$sql$, name || '_adjusted', name, name || '_known_at');
    END LOOP;
END
$$;

COMMIT;
