-- Portfolio snapshots keep their history (trading 0012). Taking a snapshot again with other
-- numbers (a bust booked since, a bar corrected) used to overwrite it; a risk run's performance
-- metrics, read from the snapshots, could then not be repeated. Now every change of a stored
-- snapshot, whoever makes it and through whichever door, keeps the row it replaces in
-- trading_portfoliosnapshotrevision, with when it was stored (known_from) and replaced
-- (known_until), and trading_portfoliosnapshot_known_at(t) reads the snapshots as stored at t.
--
-- A row trigger suffices here, unlike market data's loads: snapshots are few (one per account
-- and time) and never compressed (they carry row-level security), and a trigger covers the
-- application's UPDATE as well as the owner's.

-- Before an update or a delete of a snapshot: keep the row as it stood. An update that changes
-- nothing keeps its known_from (nothing was learnt). The new numbers are stored from the
-- moment the row is locked (clock_timestamp, after any writer it waited for), never before the
-- ones they replace. SECURITY DEFINER: the revisions are the owner's to write, whoever changes.
-- pg_temp last in the search path: unnamed, it is searched first for tables, and a role with
-- TEMPORARY could divert the owner's writes into a table (and a trigger) of its own.
CREATE OR REPLACE FUNCTION trading_snapshot_keep_revision() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    stamp timestamptz := clock_timestamp();
BEGIN
    -- A snapshot is the account's value at its time: moved to another account or time (or
    -- partition, which PostgreSQL does as a delete and an insert), it would be another one.
    IF TG_OP = 'UPDATE' AND (NEW.account_id, NEW.ts) IS DISTINCT FROM (OLD.account_id, OLD.ts)
    THEN
        RAISE EXCEPTION 'snapshot %: its account and time never change (take another)', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.account_id, NEW.ts, NEW.currency, NEW.cash, NEW.market_value, NEW.nav,
            NEW.gross_exposure, NEW.net_exposure, NEW.daily_pnl, NEW.unpriced, NEW.known_at,
            NEW.code_version)
           IS NOT DISTINCT FROM
           (OLD.account_id, OLD.ts, OLD.currency, OLD.cash, OLD.market_value, OLD.nav,
            OLD.gross_exposure, OLD.net_exposure, OLD.daily_pnl, OLD.unpriced, OLD.known_at,
            OLD.code_version) THEN
            NEW.known_from := OLD.known_from;
            RETURN NEW;
        END IF;
        stamp := greatest(stamp, OLD.known_from);
        NEW.known_from := stamp;
    END IF;
    INSERT INTO trading_portfoliosnapshotrevision (
        row_id, account_id, ts, currency, cash, market_value, nav, gross_exposure, net_exposure,
        daily_pnl, unpriced, known_at, code_version, known_from, known_until, change, actor,
        db_role)
    VALUES (
        OLD.id, OLD.account_id, OLD.ts, OLD.currency, OLD.cash, OLD.market_value, OLD.nav,
        OLD.gross_exposure, OLD.net_exposure, OLD.daily_pnl, OLD.unpriced, OLD.known_at,
        OLD.code_version, OLD.known_from, greatest(stamp, OLD.known_from),
        CASE TG_OP WHEN 'UPDATE' THEN 'revised' ELSE 'deleted' END, marketdata_actor(),
        session_user);
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION trading_snapshot_keep_revision() FROM PUBLIC;

CREATE OR REPLACE TRIGGER trading_snapshot_keep_revision
    BEFORE UPDATE OR DELETE ON trading_portfoliosnapshot
    FOR EACH ROW EXECUTE FUNCTION trading_snapshot_keep_revision();

-- Revisions are written by the trigger alone and never changed: not even the owner edits one
-- by mistake (TRUNCATE, which retention's tests use, stays the owner's).
CREATE OR REPLACE FUNCTION trading_snapshot_revision_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'snapshot revision %: revisions are never changed or deleted', OLD.id
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE TRIGGER trading_snapshot_revision_append_only
    BEFORE UPDATE OR DELETE ON trading_portfoliosnapshotrevision
    FOR EACH ROW EXECUTE FUNCTION trading_snapshot_revision_refuse_change();

-- The revisions follow the snapshots' row-level security: an account's old numbers are read by
-- those who read its snapshots (trading/sql/security/0003.sql).
ALTER TABLE trading_portfoliosnapshotrevision ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON trading_portfoliosnapshotrevision;
CREATE POLICY account_read ON trading_portfoliosnapshotrevision
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user))
                      OR account_id IN (SELECT trading_group_accounts(false)));

-- The snapshots as stored at known_at (NULL: the present), in the table's own row type (its
-- columns in the table's order), so a query reads it in the table's place.
CREATE OR REPLACE FUNCTION trading_portfoliosnapshot_known_at(known_at timestamptz)
RETURNS SETOF trading_portfoliosnapshot
LANGUAGE sql STABLE AS $$
    SELECT id, ts, currency, cash, market_value, nav, gross_exposure, net_exposure, daily_pnl,
           unpriced, account_id, code_version, known_at, known_from
    FROM trading_portfoliosnapshot s
    WHERE $1 IS NULL OR s.known_from <= $1
    UNION ALL
    SELECT row_id, ts, currency, cash, market_value, nav, gross_exposure, net_exposure,
           daily_pnl, unpriced, account_id, code_version, known_at, known_from
    FROM trading_portfoliosnapshotrevision r
    WHERE $1 IS NOT NULL AND r.known_from <= $1 AND r.known_until > $1
$$;
