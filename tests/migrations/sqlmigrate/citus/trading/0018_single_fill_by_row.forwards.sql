BEGIN;
--
-- Raw SQL operation
--
-- A single fill booked by the per-row trigger (issue 27): trading_book_executions as in 0017,
-- except that a batch of one execution takes the per-row path (trading_execution_books) rather
-- than the set-based one. Measured on one fill as trading_app (EXPLAIN ANALYZE, warm session):
-- the set-based path costs 3.4 ms (its checks and window functions planned and run for one
-- row, then trading_batch_by_statement's lookups), the per-row trigger 0.5 ms of a 1.8 ms
-- INSERT. Both check the same rules with the same messages and rule names (0017's
-- trading_book_batch_checked copies the trigger's words), so a single fill is booked and
-- refused as before; the API books one fill per POST, so this is its path.

-- Book the executions given by the arrays (one element per execution, in booking order; an
-- id may be given, taken from the table's sequence beforehand, else one is taken in batch
-- order). The ids booked, in batch order; an execution booked already with the same terms is
-- skipped (no id), as by the trigger. Checks, as row-level security does for the
-- application's own writes, that the acting user may trade every account of the batch. No
-- temporary table: one the caller made under the same name would be written as the owner.
CREATE OR REPLACE FUNCTION trading_book_executions(
    ids bigint[], exec_ids text[], order_ids bigint[], account_ids bigint[],
    instrument_ids bigint[], sides text[], quantities numeric[], prices numeric[], fees numeric[],
    liquidities text[], venues text[], executed_ats timestamptz[], kinds text[],
    supersedes_ids bigint[], reasons text[]
) RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC'
SET qvp.books = '' SET qvp.books_batch = '' AS $$
DECLARE
    refused bigint;
    seqs bigint[];
    filleds numeric[];
    qtys numeric[];
    avg_costs numeric[];
    pnls numeric[];
BEGIN
    IF coalesce(cardinality(exec_ids), 0) = 0 THEN
        RETURN;
    END IF;
    -- Row-level security's own exemptions: a superuser's session, a role that bypasses it,
    -- the tables' owner (session_user stands for the caller, as in trading_may_trade).
    SELECT a.id INTO refused FROM (SELECT DISTINCT unnest(account_ids) AS id) a
    WHERE NOT trading_may_trade(a.id) LIMIT 1;
    IF FOUND AND NOT EXISTS (
        SELECT 1 FROM pg_roles r
        WHERE r.rolname = session_user
          AND (r.rolsuper OR r.rolbypassrls
               OR r.oid = (SELECT c.relowner FROM pg_class c
                           WHERE c.oid = 'trading_execution'::regclass))
    ) THEN
        RAISE EXCEPTION 'account %: no account you may trade (row-level security)', refused
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The orders first, as the trigger locks them: they serialise everything done to them,
    -- an exec id booked meanwhile by another transaction included (seen from here on).
    PERFORM 1 FROM trading_order o WHERE o.id = ANY (order_ids) ORDER BY o.id FOR UPDATE;
    -- One execution: the per-row trigger books it (cheaper for one row, same rules).
    IF cardinality(exec_ids) > 1
       AND trading_batch_by_statement(exec_ids, account_ids, kinds) THEN
        PERFORM set_config('qvp.books', 'writing', true);
        SELECT * INTO seqs, filleds, qtys, avg_costs, pnls
        -- As the columns hold them (the per-row trigger sees them so): the same arithmetic.
        FROM trading_book_batch_checked(exec_ids, order_ids, account_ids, instrument_ids, sides,
                                        quantities::numeric(20, 8)[], prices::numeric(20, 8)[],
                                        executed_ats);
        PERFORM set_config('qvp.books_batch', 'on', true);
    END IF;
    -- One INSERT: by statement when checked above (the per-row trigger leaves the rows as
    -- they come), else each row booked by trading_execution_books in batch order.
    RETURN QUERY
    INSERT INTO trading_execution (id, exec_id, order_id, account_id, instrument_id, side,
                                   quantity, price, fee, liquidity, venue, executed_at, kind,
                                   supersedes_id, reason, position_sequence, order_filled_after,
                                   position_quantity_after, position_average_cost_after,
                                   position_realized_pnl_after)
    SELECT coalesce(v.id, nextval(pg_get_serial_sequence('trading_execution', 'id'))),
           v.exec_id, v.order_id, v.account_id, v.instrument_id, v.side, v.quantity, v.price,
           v.fee, v.liquidity, v.venue, v.executed_at, v.kind, v.supersedes_id, v.reason,
           v.seq, v.filled, v.qty, v.avg_cost, v.pnl
    FROM unnest(ids, exec_ids, order_ids, account_ids, instrument_ids, sides, quantities, prices,
                fees, liquidities, venues, executed_ats, kinds, supersedes_ids, reasons,
                seqs, filleds, qtys, avg_costs, pnls)
         WITH ORDINALITY AS v(id, exec_id, order_id, account_id, instrument_id, side, quantity,
                              price, fee, liquidity, venue, executed_at, kind, supersedes_id,
                              reason, seq, filled, qty, avg_cost, pnl, n)
    ORDER BY v.n
    RETURNING id;
END $$;


-- Executed by the application's role (the roles command grants it again to a role made
-- later: qvp_site/db/roles.py); what it calls runs as the owner within it.
REVOKE ALL ON FUNCTION trading_book_executions(bigint[], text[], bigint[], bigint[], bigint[],
    text[], numeric[], numeric[], numeric[], text[], text[], timestamptz[], text[], bigint[],
    text[]) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trading_app') THEN
        GRANT EXECUTE ON FUNCTION trading_book_executions(bigint[], text[], bigint[], bigint[],
            bigint[], text[], numeric[], numeric[], numeric[], text[], text[], timestamptz[],
            text[], bigint[], text[]) TO trading_app;
    END IF;
END $$;

COMMIT;
