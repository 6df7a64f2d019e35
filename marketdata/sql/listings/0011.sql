-- The security master (marketdata 0011): each instrument's terms over time (marketdata_listing:
-- symbol, name, MIC, currency, status, identifiers, valid from one date until another) and when
-- the system learnt them (known_from; a version a corrected history replaced is closed with
-- known_until, never deleted). The instrument keeps its id for life; its own row holds the
-- terms of today's version, and the two stay in step whichever is written:
--
-- * marketdata_listing_set(...) states an instrument's terms over [valid_from, valid_until):
--   the current versions it overlaps are closed, the parts of them outside the range kept as
--   new versions, the new one added, and the instrument's row given today's terms. Stating
--   what is already known changes nothing. marketdata_listing_clear(...) says the instrument
--   had no terms over a range (before its first listing). The loaders call them.
-- * An instrument inserted starts its history with one version since always; an instrument
--   whose symbol, currency or status (active) is changed in place (the admin, the API, raw SQL)
--   changes its history from today, through the same function.
--
-- Reads: marketdata_listings_known_at(t), marketdata_resolve_symbols(symbols, on, known_at)
-- (the instrument that bore each symbol on a date, or why none), marketdata_resolve_symbol
-- (one, raising), marketdata_universe(on, known_at) (the instruments listed or suspended on a
-- date, delisted ones since included).

-- The terms an instrument's own row carries, from a version.
CREATE OR REPLACE FUNCTION marketdata_listing_status(active boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN active THEN 'listed' ELSE 'delisted' END;
$$;

-- The versions as the system knew them at known_at (NULL: the current ones).
CREATE OR REPLACE FUNCTION marketdata_listings_known_at(known_at timestamptz)
RETURNS SETOF marketdata_listing
LANGUAGE sql STABLE AS $$
    SELECT * FROM marketdata_listing l
    WHERE CASE WHEN $1 IS NULL THEN l.known_until IS NULL
               ELSE l.known_from <= $1 AND (l.known_until IS NULL OR l.known_until > $1) END
$$;

-- The version whose terms the instrument's row carries: the one that holds today, else the
-- latest (a history that ended, or starts later).
CREATE OR REPLACE FUNCTION marketdata_listing_today(p_instrument bigint)
RETURNS SETOF marketdata_listing
LANGUAGE sql STABLE
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
    SELECT * FROM marketdata_listing
    WHERE instrument_id = p_instrument AND known_until IS NULL
    ORDER BY daterange(valid_from, valid_until) @> current_date DESC,
             valid_from DESC NULLS LAST
    LIMIT 1
$$;

-- Give the instrument's row the terms of today's version.
CREATE OR REPLACE FUNCTION marketdata_listing_sync(p_instrument bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
    UPDATE marketdata_instrument i
    SET symbol = v.symbol, currency = v.currency, active = v.status <> 'delisted',
        exchange = CASE WHEN v.mic <> '' THEN v.mic ELSE i.exchange END
    FROM marketdata_listing_today(p_instrument) v
    WHERE i.id = p_instrument
      AND (i.symbol, i.currency, i.active) IS DISTINCT FROM
          (v.symbol, v.currency, v.status <> 'delisted');
$$;

-- Close the instrument's current versions that overlap [p_from, p_until) at stamp, keeping the
-- parts of them outside the range as versions known from stamp; the number closed. The
-- caller holds the instrument's row lock (one writer of a history at a time).
CREATE OR REPLACE FUNCTION marketdata_listing_cut(
    p_instrument bigint, p_from date, p_until date, stamp timestamptz
) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    span daterange := daterange(p_from, p_until);
    v marketdata_listing;
    closed integer := 0;
BEGIN
    FOR v IN SELECT * FROM marketdata_listing
             WHERE instrument_id = p_instrument AND known_until IS NULL
               AND daterange(valid_from, valid_until) && span
             ORDER BY valid_from NULLS FIRST LOOP
        UPDATE marketdata_listing SET known_until = stamp WHERE id = v.id;
        closed := closed + 1;
        IF NOT lower_inf(span) AND (v.valid_from IS NULL OR v.valid_from < p_from) THEN
            INSERT INTO marketdata_listing (instrument_id, valid_from, valid_until, symbol, name,
                mic, currency, status, isin, figi, vendor_ids, known_from)
            VALUES (p_instrument, v.valid_from, p_from, v.symbol, v.name, v.mic, v.currency,
                v.status, v.isin, v.figi, v.vendor_ids, stamp);
        END IF;
        IF NOT upper_inf(span) AND (v.valid_until IS NULL OR v.valid_until > p_until) THEN
            INSERT INTO marketdata_listing (instrument_id, valid_from, valid_until, symbol, name,
                mic, currency, status, isin, figi, vendor_ids, known_from)
            VALUES (p_instrument, p_until, v.valid_until, v.symbol, v.name, v.mic, v.currency,
                v.status, v.isin, v.figi, v.vendor_ids, stamp);
        END IF;
    END LOOP;
    RETURN closed;
END
$$;
REVOKE ALL ON FUNCTION marketdata_listing_cut(bigint, date, date, timestamptz) FROM PUBLIC;

-- Lock an instrument's history for a change; refuses an unknown instrument or a range that
-- ends before it starts.
CREATE OR REPLACE FUNCTION marketdata_listing_lock(p_instrument bigint, p_from date, p_until date)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    IF p_from IS NOT NULL AND p_until IS NOT NULL AND p_until <= p_from THEN
        RAISE EXCEPTION 'listing of instrument %: valid_until % is not after valid_from %',
            p_instrument, p_until, p_from USING ERRCODE = 'check_violation';
    END IF;
    PERFORM 1 FROM marketdata_instrument WHERE id = p_instrument FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no instrument %', p_instrument USING ERRCODE = 'foreign_key_violation';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION marketdata_listing_lock(bigint, date, date) FROM PUBLIC;

-- The instrument had no terms over [p_from, p_until) (before it was first listed, say): the
-- versions there are closed. Returns the number closed; none where none held.
CREATE OR REPLACE FUNCTION marketdata_listing_clear(
    p_instrument bigint, p_from date, p_until date
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    closed integer;
BEGIN
    PERFORM marketdata_listing_lock(p_instrument, p_from, p_until);
    closed := marketdata_listing_cut(p_instrument, p_from, p_until, clock_timestamp());
    PERFORM marketdata_listing_sync(p_instrument);
    RETURN closed;
END
$$;

-- The instrument's terms over [p_from, p_until), stated: the versions there are closed and
-- this one added, unless it is known already (then nothing changes and 0 is returned). With
-- p_sync, the instrument's row takes today's terms; without (the instrument's own trigger,
-- which writes the row itself), not: so this form is the owner's alone, and the roles call
-- marketdata_listing_set, which always syncs.
CREATE OR REPLACE FUNCTION marketdata_listing_put(
    p_instrument bigint, p_from date, p_until date, p_symbol text, p_name text, p_mic text,
    p_currency text, p_status text, p_isin text, p_figi text, p_vendor_ids jsonb,
    p_sync boolean
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    stamp timestamptz;
    closed integer;
BEGIN
    PERFORM marketdata_listing_lock(p_instrument, p_from, p_until);
    IF EXISTS (SELECT 1 FROM marketdata_listing
               WHERE instrument_id = p_instrument AND known_until IS NULL
                 AND valid_from IS NOT DISTINCT FROM p_from
                 AND valid_until IS NOT DISTINCT FROM p_until
                 AND (symbol, name, mic, currency, status, isin, figi, vendor_ids)
                     = (p_symbol, coalesce(p_name, ''), coalesce(p_mic, ''), p_currency,
                        p_status, coalesce(p_isin, ''), coalesce(p_figi, ''),
                        coalesce(p_vendor_ids, '{}'))) THEN
        RETURN 0;  -- known already
    END IF;
    stamp := clock_timestamp();
    closed := marketdata_listing_cut(p_instrument, p_from, p_until, stamp);
    INSERT INTO marketdata_listing (instrument_id, valid_from, valid_until, symbol, name, mic,
        currency, status, isin, figi, vendor_ids, known_from)
    VALUES (p_instrument, p_from, p_until, p_symbol, coalesce(p_name, ''), coalesce(p_mic, ''),
        p_currency, p_status, coalesce(p_isin, ''), coalesce(p_figi, ''),
        coalesce(p_vendor_ids, '{}'), stamp);
    IF p_sync THEN
        PERFORM marketdata_listing_sync(p_instrument);
    END IF;
    RETURN closed + 1;
END
$$;
REVOKE ALL ON FUNCTION marketdata_listing_put(bigint, date, date, text, text, text, text, text,
    text, text, jsonb, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION marketdata_listing_set(
    p_instrument bigint, p_from date, p_until date, p_symbol text, p_name text, p_mic text,
    p_currency text, p_status text, p_isin text DEFAULT '', p_figi text DEFAULT '',
    p_vendor_ids jsonb DEFAULT '{}'
) RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
    SELECT marketdata_listing_put(p_instrument, p_from, p_until, p_symbol, p_name, p_mic,
        p_currency, p_status, p_isin, p_figi, p_vendor_ids, true);
$$;
REVOKE ALL ON FUNCTION marketdata_listing_set(bigint, date, date, text, text, text, text, text,
    text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_listing_clear(bigint, date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION marketdata_listing_sync(bigint) FROM PUBLIC;

-- An instrument inserted starts its history: one version with its terms, since always (or since
-- another instrument last bore its symbol listed). Its exchange is free text (NASDAQ, NYSE),
-- not a MIC: the version's MIC stays empty until a load of the security master states it.
CREATE OR REPLACE FUNCTION marketdata_instrument_listed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    since date;
BEGIN
    -- Since always, unless another instrument bore the symbol listed: then from the end of
    -- the last of those versions (a ticker a delisted company left, given to a new one).
    SELECT max(valid_until) INTO since FROM marketdata_listing
    WHERE symbol = NEW.symbol AND known_until IS NULL AND status <> 'delisted'
      AND instrument_id <> NEW.id;
    INSERT INTO marketdata_listing (instrument_id, valid_from, valid_until, symbol, name,
        mic, currency, status, isin, figi, vendor_ids)
    VALUES (NEW.id, since, NULL, NEW.symbol, '', '', NEW.currency,
        marketdata_listing_status(NEW.active), '', '', '{}');
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER marketdata_instrument_listed
    AFTER INSERT ON marketdata_instrument
    FOR EACH ROW EXECUTE FUNCTION marketdata_instrument_listed();

-- An instrument's terms changed in place change its history from today, unless they are the
-- terms its history gives today already (marketdata_listing_sync writing them).
CREATE OR REPLACE FUNCTION marketdata_instrument_relisted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v marketdata_listing;
BEGIN
    SELECT * INTO v FROM marketdata_listing_today(NEW.id);
    IF FOUND AND (v.symbol, v.currency, v.status <> 'delisted')
                 IS NOT DISTINCT FROM (NEW.symbol, NEW.currency, NEW.active) THEN
        RETURN NEW;
    END IF;
    -- From today until today's version ends (its whole span if it starts later).
    PERFORM marketdata_listing_put(NEW.id, greatest(current_date, v.valid_from),
        CASE WHEN v.valid_until > current_date THEN v.valid_until END, NEW.symbol,
        coalesce(v.name, ''), coalesce(v.mic, ''), NEW.currency,
        CASE WHEN NEW.active THEN
            CASE WHEN v.status = 'suspended' THEN 'suspended' ELSE 'listed' END
        ELSE 'delisted' END,
        coalesce(v.isin, ''), coalesce(v.figi, ''), coalesce(v.vendor_ids, '{}'), false);
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER marketdata_instrument_relisted
    BEFORE UPDATE OF symbol, currency, active ON marketdata_instrument
    FOR EACH ROW
    WHEN ((OLD.symbol, OLD.currency, OLD.active) IS DISTINCT FROM
          (NEW.symbol, NEW.currency, NEW.active))
    EXECUTE FUNCTION marketdata_instrument_relisted();

-- Versions are closed by marketdata_listing_set, never edited otherwise nor deleted.
CREATE OR REPLACE FUNCTION marketdata_listing_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'listing %: a version of the security master is never deleted', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.known_until IS NOT NULL
       OR (to_jsonb(NEW) - 'known_until') IS DISTINCT FROM (to_jsonb(OLD) - 'known_until') THEN
        RAISE EXCEPTION 'listing %: a version is only ever closed (known_until), never edited',
            OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER marketdata_listing_kept
    BEFORE UPDATE OR DELETE ON marketdata_listing
    FOR EACH ROW EXECUTE FUNCTION marketdata_listing_kept();

-- Each symbol's bearer on p_on as known at p_known_at: the instrument whose version then bore
-- it, one listed or suspended preferred to delisted ones (a ticker a delisted company bore
-- last may be another's now). Where none or several remain, instrument_id is NULL and problem
-- says why, naming the symbol, the date and the candidates.
CREATE OR REPLACE FUNCTION marketdata_resolve_symbols(
    p_symbols text[], p_on date DEFAULT current_date, p_known_at timestamptz DEFAULT NULL
) RETURNS TABLE (symbol text, instrument_id bigint, problem text)
LANGUAGE sql STABLE AS $$
    WITH wanted AS (
        SELECT DISTINCT s AS symbol FROM unnest(p_symbols) AS s
    ),
    bearers AS (
        SELECT w.symbol, l.instrument_id, l.status <> 'delisted' AS live
        FROM wanted w JOIN marketdata_listings_known_at(p_known_at) l
          ON l.symbol = w.symbol AND daterange(l.valid_from, l.valid_until) @> p_on
    ),
    chosen AS (
        SELECT b.symbol, array_agg(b.instrument_id ORDER BY b.instrument_id) AS ids
        FROM bearers b
        WHERE b.live OR NOT EXISTS (SELECT 1 FROM bearers o WHERE o.symbol = b.symbol AND o.live)
        GROUP BY b.symbol
    )
    SELECT w.symbol,
           CASE WHEN cardinality(c.ids) = 1 THEN c.ids[1] END,
           CASE
               WHEN c.ids IS NULL THEN format('unknown symbol %s on %s%s', w.symbol, p_on,
                   coalesce(' (it was borne by ' || (
                       SELECT string_agg(format('instrument %s, now %s, from %s until %s',
                                                l.instrument_id, i.symbol,
                                                coalesce(l.valid_from::text, 'always'),
                                                coalesce(l.valid_until::text, 'now')),
                                         '; ' ORDER BY l.valid_from NULLS FIRST)
                       FROM marketdata_listings_known_at(p_known_at) l
                       JOIN marketdata_instrument i ON i.id = l.instrument_id
                       WHERE l.symbol = w.symbol) || ')', ''))
               WHEN cardinality(c.ids) > 1 THEN format(
                   'ambiguous symbol %s on %s: borne by %s', w.symbol, p_on,
                   (SELECT string_agg(format('instrument %s (now %s)', i.id, i.symbol), ', '
                                      ORDER BY i.id)
                    FROM marketdata_instrument i WHERE i.id = ANY (c.ids)))
           END
    FROM wanted w LEFT JOIN chosen c ON c.symbol = w.symbol
$$;

CREATE OR REPLACE FUNCTION marketdata_resolve_symbol(
    p_symbol text, p_on date DEFAULT current_date, p_known_at timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    found_id bigint;
    why text;
BEGIN
    SELECT r.instrument_id, r.problem INTO found_id, why
    FROM marketdata_resolve_symbols(ARRAY[p_symbol], p_on, p_known_at) r;
    IF found_id IS NULL THEN
        RAISE EXCEPTION '%', why USING ERRCODE = 'no_data_found';
    END IF;
    RETURN found_id;
END
$$;

-- The instruments listed (or suspended) on p_on, as known at p_known_at: those delisted since
-- included, with the terms they had then.
CREATE OR REPLACE FUNCTION marketdata_universe(
    p_on date DEFAULT current_date, p_known_at timestamptz DEFAULT NULL
) RETURNS TABLE (instrument_id bigint, symbol text, name text, mic text, currency text,
                 status text)
LANGUAGE sql STABLE AS $$
    SELECT l.instrument_id, l.symbol, l.name, l.mic, l.currency, l.status
    FROM marketdata_listings_known_at(p_known_at) l
    WHERE daterange(l.valid_from, l.valid_until) @> p_on AND l.status <> 'delisted'
    ORDER BY l.symbol
$$;
