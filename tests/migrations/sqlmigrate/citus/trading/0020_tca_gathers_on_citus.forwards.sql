BEGIN;
--
-- On Citus alone, SQL
--
CREATE INDEX IF NOT EXISTS marketdata_tick_known_from_brin ON marketdata_tick USING brin (known_from) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS marketdata_minutebar_known_from_brin ON marketdata_minutebar USING brin (known_from) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS marketdata_tickrevision_known_until_brin ON marketdata_tickrevision USING brin (known_until) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS marketdata_minutebarrevision_known_until_brin ON marketdata_minutebarrevision USING brin (known_until) WITH (autosummarize = on);
--
-- On Citus alone, SQL
--
-- Version 0020 (trading 0020), on Citus alone: the TCA's queue gathers the market data's
-- changes instead of being told of them.
--
-- On one node the statement triggers of trading/sql/tca/0016.sql queue the days that a load or
-- a revision of ticks or minute bars touches, as the change is made. Citus refuses statement
-- triggers on distributed tables, so there they are set aside (marketdata 0017 and 0019).
-- Instead, each pending refresh first reads what changed since the last gathering: the rows
-- learnt (known_from) and the revisions closed (known_until) from the last gathering's moment
-- up to the settled moment (marketdata_settled_at: every transaction that could write a change
-- stamped before it has ended, so nothing stamped in the window is committed later and
-- missed). The changes are grouped by instrument and day on the shards, and the days near a
-- fill whose cost was computed as known before the change are queued, by the same function as
-- the triggers (trading_tca_queue_days). Those are the costs the change makes stale: a cost
-- computed as known at or after a change has read it already, since a refresh reads as known
-- at a settled moment (marketdata/knowledge.py refuses a later one).
--
-- It needs the clocks of the coordinator and the workers in step: a row the application's role
-- writes is dated by its worker (marketdata 0021), the window by the coordinator.

-- The moment up to which the changes were gathered: one row, the owner's alone. It starts at
-- the migration's moment: the changes made before it queued nothing on Citus, and are not
-- gathered now either (a full refresh, manage.py tca, restates every range).
CREATE TABLE IF NOT EXISTS trading_tcagathered (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    gathered_until timestamptz NOT NULL
);
REVOKE ALL ON trading_tcagathered FROM PUBLIC;
INSERT INTO trading_tcagathered (gathered_until) VALUES (now()) ON CONFLICT DO NOTHING;
-- The days (UTC) of ``learnt``'s rows learnt in (p_since, p_until], and of ``revised``'s
-- revisions closed then, each with its latest change and whether any of it is a revision.
-- Grouped on the shards: both tables are distributed by instrument, and each query's groups
-- hold the distribution column. date_bin, not date_trunc: it reads no time zone, which the
-- workers' sessions need not share.
CREATE OR REPLACE FUNCTION trading_tca_changed_days(
    learnt regclass, revised regclass, p_since timestamptz, p_until timestamptz
) RETURNS TABLE (instrument_id bigint, day timestamptz, stamp timestamptz, is_revision boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    days_of constant text :=
        'SELECT array_agg(d.instrument_id), array_agg(d.day), array_agg(d.stamp) FROM ('
        ' SELECT c.instrument_id, max(c.%2$I) AS stamp,'
        ' date_bin(interval ''1 day'', c.ts, timestamptz ''2000-01-01 00:00+00'') AS day'
        ' FROM %1$s c WHERE c.%2$I > $1 AND c.%2$I <= $2 GROUP BY c.instrument_id, day) d';
    l_instruments bigint[];
    l_days timestamptz[];
    l_stamps timestamptz[];
    r_instruments bigint[];
    r_days timestamptz[];
    r_stamps timestamptz[];
BEGIN
    -- Two statements, each over one distributed table; the days are merged here.
    EXECUTE format(days_of, learnt, 'known_from')
        INTO l_instruments, l_days, l_stamps USING p_since, p_until;
    EXECUTE format(days_of, revised, 'known_until')
        INTO r_instruments, r_days, r_stamps USING p_since, p_until;
    RETURN QUERY
    SELECT c.instrument_id, c.day, max(c.stamp), bool_or(c.is_revision)
    FROM (SELECT l.*, false AS is_revision
          FROM unnest(l_instruments, l_days, l_stamps) AS l (instrument_id, day, stamp)
          UNION ALL
          SELECT r.*, true
          FROM unnest(r_instruments, r_days, r_stamps) AS r (instrument_id, day, stamp)) c
    GROUP BY c.instrument_id, c.day;
END
$$;
REVOKE ALL ON FUNCTION trading_tca_changed_days(regclass, regclass, timestamptz, timestamptz)
    FROM PUBLIC;
-- Gather the changes of the ticks and the minute bars up to p_known_at (no later than the
-- settled moment) and queue the days whose costs they make stale: a day with a revision as its
-- revision table's (as the revision's trigger queues it on one node), a day of rows added
-- alone as its table's. How many days it queued. Owner-run: the pending refresh calls it
-- first (trading_tca_refresh_pending on Citus); concurrent gatherings take turns on the row.
CREATE OR REPLACE FUNCTION trading_tca_gather(p_known_at timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    since timestamptz;
    until timestamptz;
    source record;
    instruments bigint[];
    days timestamptz[];
    stamps timestamptz[];
    revisions boolean[];
    queued bigint := 0;
BEGIN
    IF p_known_at IS NULL THEN
        RAISE EXCEPTION 'trading_tca_gather: known_at is required (marketdata_settled_at())'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT g.gathered_until INTO STRICT since FROM trading_tcagathered g FOR UPDATE;
    until := least(p_known_at, marketdata_settled_at());
    IF until <= since THEN
        RETURN 0;
    END IF;
    FOR source IN
        SELECT * FROM (VALUES ('marketdata_tick', 'marketdata_tickrevision'),
                              ('marketdata_minutebar', 'marketdata_minutebarrevision'))
                      AS s (learnt, revised)
    LOOP
        SELECT array_agg(d.instrument_id), array_agg(d.day), array_agg(d.stamp),
               array_agg(d.is_revision)
        INTO instruments, days, stamps, revisions
        FROM trading_tca_changed_days(source.learnt::regclass, source.revised::regclass,
                                      since, until) d
        WHERE EXISTS (
            SELECT FROM trading_executioncost c
            WHERE c.instrument_id = d.instrument_id AND c.known_at < d.stamp
              AND c.executed_at >= d.day - interval '1 day'
              AND c.executed_at < d.day + interval '2 days')
           OR EXISTS (
            -- an order created long before its fills: its arrival was read on the day
            SELECT FROM trading_executioncost c
            WHERE c.instrument_id = d.instrument_id AND c.known_at < d.stamp
              AND c.executed_at >= d.day + interval '2 days'
              AND c.arrival_at >= d.day AND c.arrival_at < d.day + interval '2 days');
        IF instruments IS NOT NULL THEN
            PERFORM trading_tca_queue_days(array_agg(q.instrument_id), array_agg(q.day),
                array_agg(q.stamp), CASE WHEN q.is_revision THEN source.revised
                                         ELSE source.learnt END)
            FROM unnest(instruments, days, stamps, revisions)
                 AS q (instrument_id, day, stamp, is_revision)
            GROUP BY q.is_revision;
            queued := queued + cardinality(instruments);
        END IF;
    END LOOP;
    UPDATE trading_tcagathered SET gathered_until = until;
    RETURN queued;
END
$$;
REVOKE ALL ON FUNCTION trading_tca_gather(timestamptz) FROM PUBLIC;
--
-- On Citus, trading_tca_refresh_pending(timestamptz) defined for Citus
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
INSERT INTO qvp_citus_set_aside (table_name, object_name, definition) SELECT '(functions)', f::text, pg_get_functiondef(f) FROM (SELECT 'trading_tca_refresh_pending(timestamptz)'::regprocedure AS f) AS kept ON CONFLICT DO NOTHING;
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

COMMIT;
