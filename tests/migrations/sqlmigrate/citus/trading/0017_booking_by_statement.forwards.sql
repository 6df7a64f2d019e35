BEGIN;
--
-- Raw SQL operation
--
-- Booking by statement (issue 27): trading_book_executions books a batch of executions in one
-- statement. A batch of plain fills (the API's fills, an imported file of fills) is checked and
-- replayed set-based: its orders and positions are locked once, every rule of
-- trading_execution_books is checked over the whole batch (the first row in batch order that
-- breaks one is refused, with the same message and rule name), and the sequence, the order's
-- fill and the position after each execution are computed by window functions in batch order
-- (trading_position_replay folds trading_position_step's arithmetic over a position's fills),
-- then inserted with one INSERT whose rows the per-row trigger leaves alone
-- (trading_books_batch). The order, the position and the cash are then settled by
-- trading_settle_executions from the statement's transition table, as before.
-- Anything else in a batch (a bust, a correction, an exec id booked already or twice in the
-- batch) is booked by the per-row trigger, in batch order, as every booking was before: its
-- replays of the position (busts, corrections, corporate-action entries) stay in one place.

-- A position's state after a fill, from the state before it: trading_position_step's
-- arithmetic, exactly (the same roundings), as an aggregate's transition. The state is
-- {quantity, average cost, realised P&L}; the first row of a position starts from the state
-- given with it (q0, a0, r0: where the position stood before the batch).
CREATE OR REPLACE FUNCTION trading_position_fold(
    state numeric[], q0 numeric, a0 numeric, r0 numeric, fill_qty numeric, fill_price numeric,
    multiplier numeric
) RETURNS numeric[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    qty numeric := coalesce(state[1], q0);
    avg_cost numeric := coalesce(state[2], a0);
    realized numeric := coalesce(state[3], r0);
    new_qty numeric := qty + fill_qty;
    closed numeric;
BEGIN
    IF qty = 0 OR sign(qty) = sign(fill_qty) THEN
        RETURN ARRAY[new_qty,
                     round((abs(qty) * avg_cost + abs(fill_qty) * fill_price) / abs(new_qty), 12),
                     realized];
    END IF;
    closed := least(abs(fill_qty), abs(qty));
    RETURN ARRAY[new_qty,
                 CASE WHEN new_qty = 0 THEN 0
                      WHEN sign(new_qty) = sign(qty) THEN avg_cost
                      ELSE fill_price END,
                 realized + round(closed * (fill_price - avg_cost) * sign(qty) * multiplier, 8)];
END $$;

CREATE OR REPLACE AGGREGATE trading_position_replay(numeric, numeric, numeric, numeric, numeric,
                                                    numeric) (
    SFUNC = trading_position_fold,
    STYPE = numeric[]
);

-- True while trading_book_executions inserts a batch it has checked and replayed itself: its
-- setting, and the tables' owner as the current user (the application's role may set the
-- setting, but it cannot insert as the owner). And true while the books write, as
-- trading_books_writing says of a table of the owner's. Evaluated per row in the triggers'
-- WHEN clauses, so written to be inlined there (no catalog query, no SET clause: the owner's
-- name is written in when the function is made, operators are pg_catalog's).
DO $$
DECLARE
    owner text := (SELECT r.rolname FROM pg_roles r JOIN pg_class c ON c.relowner = r.oid
                   WHERE c.oid = 'trading_execution'::regclass);
BEGIN
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION trading_books_batch() RETURNS boolean
        LANGUAGE sql STABLE AS $b$
            SELECT pg_catalog.current_setting('qvp.books_batch', true) IS NOT DISTINCT FROM 'on'
                   AND CURRENT_USER = %1$L::pg_catalog.name
        $b$;
        CREATE OR REPLACE FUNCTION trading_books_owner_writing() RETURNS boolean
        LANGUAGE sql STABLE AS $b$
            SELECT pg_catalog.current_setting('qvp.books', true) IS NOT DISTINCT FROM 'writing'
                   AND CURRENT_USER = %1$L::pg_catalog.name
        $b$;
    $f$, owner);
END $$;

-- The cash entries the books write skip trading_cash_from_executions, which lets them pass
-- (trading_books_writing) once called: the same rule, without a call per entry.
DROP TRIGGER IF EXISTS trading_cash_from_executions ON trading_cashentry;
CREATE TRIGGER trading_cash_from_executions BEFORE INSERT ON trading_cashentry FOR EACH ROW
    WHEN (NOT trading_books_owner_writing()) EXECUTE FUNCTION trading_cash_from_executions();

-- The per-row booking, except for the rows of a batch booked by statement.
DROP TRIGGER IF EXISTS trading_execution_books ON trading_execution;
CREATE TRIGGER trading_execution_books BEFORE INSERT ON trading_execution FOR EACH ROW
    WHEN (NOT trading_books_batch()) EXECUTE FUNCTION trading_execution_books();

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
    IF trading_batch_by_statement(exec_ids, account_ids, kinds) THEN
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

-- A batch is booked by statement when it holds plain fills only, each exec id new to its
-- account and once in the batch (a replay, a bust and a correction are the trigger's).
CREATE OR REPLACE FUNCTION trading_batch_by_statement(exec_ids text[], account_ids bigint[],
                                                      kinds text[]) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    WITH batch AS (SELECT * FROM unnest(exec_ids, account_ids, kinds) AS v(exec_id, account_id,
                                                                           kind))
    SELECT NOT EXISTS (SELECT 1 FROM batch b WHERE b.kind IS DISTINCT FROM 'fill'
                                                OR b.account_id IS NULL OR b.exec_id IS NULL)
       AND NOT EXISTS (SELECT 1 FROM batch b GROUP BY b.exec_id, b.account_id
                       HAVING count(*) > 1)
       AND NOT EXISTS (SELECT 1 FROM batch b JOIN trading_execution x
                       ON x.exec_id = b.exec_id AND x.account_id = b.account_id)
$$;

-- Lock the batch's positions (made when new), check every rule of
-- trading_execution_books over the batch (the first row in batch order that breaks one is
-- refused, in the trigger's words and by its rule), and replay each position and order
-- through the batch in its order: the sequence, the order's fill and the position after each
-- execution, in batch order.
CREATE OR REPLACE FUNCTION trading_book_batch_checked(
    exec_ids text[], order_ids bigint[], account_ids bigint[], instrument_ids bigint[],
    sides text[], quantities numeric[], prices numeric[], executed_ats timestamptz[],
    OUT seqs bigint[], OUT filleds numeric[], OUT qtys numeric[], OUT avg_costs numeric[],
    OUT pnls numeric[]
) LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    bad record;
    problem text[];
BEGIN
    -- The orders are locked (trading_book_executions).
    SELECT v.exec_id, v.order_id INTO bad
    FROM unnest(exec_ids, order_ids) WITH ORDINALITY AS v(exec_id, order_id, n)
    WHERE NOT EXISTS (SELECT 1 FROM trading_order o WHERE o.id = v.order_id)
    ORDER BY v.n LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'execution %: order % does not exist', bad.exec_id, bad.order_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'execution_order_exists';
    END IF;
    -- The positions of the batch's rows (refused below unless they are their orders').
    INSERT INTO trading_position (account_id, instrument_id, quantity, average_cost,
                                  realized_pnl, last_sequence, updated_at)
    SELECT DISTINCT v.account_id, v.instrument_id, 0, 0, 0, 0, statement_timestamp()
    FROM unnest(account_ids, instrument_ids) AS v(account_id, instrument_id)
    JOIN trading_order o ON o.account_id = v.account_id AND o.instrument_id = v.instrument_id
    ORDER BY 1, 2
    ON CONFLICT (account_id, instrument_id) DO NOTHING;
    PERFORM 1 FROM trading_position p
    WHERE (p.account_id, p.instrument_id) IN (SELECT * FROM unnest(account_ids, instrument_ids))
    ORDER BY p.id FOR UPDATE;

    WITH batch AS (
        SELECT * FROM unnest(exec_ids, order_ids, account_ids, instrument_ids, sides, quantities,
                             prices, executed_ats)
        WITH ORDINALITY AS v(exec_id, order_id, account_id, instrument_id, side, quantity,
                             price, executed_at, n)
    ),
    start AS MATERIALIZED (
        -- Where each position stands: after its latest execution, or after its latest
        -- corporate-action entry when one came after it (the position row holds it), as the
        -- trigger finds it; and the latest action's ex moment, before which nothing is booked.
        SELECT d.account_id, d.instrument_id,
               CASE WHEN y.from_p THEN p.last_sequence
                    ELSE coalesce(x.position_sequence, 0) END AS seq0,
               CASE WHEN y.from_p THEN p.quantity
                    ELSE coalesce(x.position_quantity_after, 0) END AS q0,
               CASE WHEN y.from_p THEN p.average_cost
                    ELSE coalesce(x.position_average_cost_after, 0) END AS a0,
               CASE WHEN y.from_p THEN p.realized_pnl
                    ELSE coalesce(x.position_realized_pnl_after, 0) END AS r0,
               (SELECT max(a.ex_at) FROM trading_actionentry a
                WHERE a.account_id = d.account_id AND a.instrument_id = d.instrument_id)
                   AS applied
        FROM (SELECT DISTINCT b.account_id, b.instrument_id FROM batch b) d
        LEFT JOIN trading_position p
          ON p.account_id = d.account_id AND p.instrument_id = d.instrument_id
        LEFT JOIN LATERAL (
            SELECT e.position_sequence, e.position_quantity_after,
                   e.position_average_cost_after, e.position_realized_pnl_after
            FROM trading_execution e
            WHERE e.account_id = d.account_id AND e.instrument_id = d.instrument_id
            ORDER BY e.position_sequence DESC LIMIT 1
        ) x ON true
        CROSS JOIN LATERAL (
            SELECT coalesce(p.last_sequence, 0) > coalesce(x.position_sequence, 0) AS from_p
        ) y
    ),
    filled AS MATERIALIZED (
        SELECT d.order_id, coalesce((SELECT e.order_filled_after FROM trading_execution e
                                     WHERE e.order_id = d.order_id
                                     ORDER BY e.position_sequence DESC LIMIT 1), 0) AS filled0
        FROM (SELECT DISTINCT b.order_id FROM batch b) d
    ),
    replayed AS (
        SELECT b.*, o.account_id AS o_account, o.instrument_id AS o_instrument,
               o.side AS o_side, o.status AS o_status, o.quantity AS o_quantity, s.applied,
               f.filled0,
               f.filled0 + sum(abs(b.quantity)) OVER by_order AS filled_after,
               s.seq0 + row_number() OVER by_position AS seq,
               trading_position_replay(s.q0, s.a0, s.r0, b.quantity, b.price, i.multiplier)
                   OVER by_position AS state
        FROM batch b
        JOIN trading_order o ON o.id = b.order_id
        JOIN filled f ON f.order_id = b.order_id
        JOIN start s ON s.account_id = b.account_id AND s.instrument_id = b.instrument_id
        LEFT JOIN marketdata_instrument i ON i.id = b.instrument_id
        WINDOW by_order AS (PARTITION BY b.order_id ORDER BY b.n ROWS UNBOUNDED PRECEDING),
               by_position AS (PARTITION BY b.account_id, b.instrument_id ORDER BY b.n
                               ROWS UNBOUNDED PRECEDING)
    ),
    -- trading_execution_books' rules, in its order (trading_execution_sane first).
    judged AS (
        SELECT r.*, CASE
            WHEN r.quantity IS NULL OR r.quantity = 0 THEN
                ARRAY[format('execution %s: quantity must not be zero', r.exec_id),
                    'execution_quantity_not_zero']
            WHEN NOT ((r.side = 'buy' AND r.quantity > 0) OR (r.side = 'sell' AND r.quantity < 0))
                 OR r.side IS NULL THEN
                ARRAY[format('execution %s: side %s does not match the sign of quantity %s'
                           ' (buys are positive)', r.exec_id, r.side, r.quantity),
                    'execution_side_matches_sign']
            WHEN r.price IS NULL OR r.price <= 0 THEN
                ARRAY[format('execution %s: price must be positive (got %s)', r.exec_id, r.price),
                    'execution_price_positive']
            WHEN r.account_id <> r.o_account OR r.instrument_id <> r.o_instrument
                 OR r.instrument_id IS NULL THEN
                ARRAY[format('execution %s: account %s and instrument %s must be those of order'
                           ' %s (%s, %s)', r.exec_id, r.account_id, r.instrument_id, r.order_id,
                           r.o_account, r.o_instrument), 'execution_matches_order']
            WHEN r.side <> r.o_side THEN
                ARRAY[format('execution %s: a %s of order %s, which is a %s order', r.exec_id,
                           r.side, r.order_id, r.o_side), 'execution_side_matches_order']
            WHEN r.o_status IN ('cancelled', 'rejected', 'expired') THEN
                ARRAY[format('execution %s: order %s is %s and takes no fills', r.exec_id,
                           r.order_id, r.o_status), 'execution_order_open']
            WHEN r.executed_at < r.applied THEN
                ARRAY[format('execution %s: dated %s, before %s, the ex moment of a corporate'
                           ' action applied to its position already', r.exec_id, r.executed_at,
                           r.applied), 'execution_before_applied_action']
            WHEN r.filled_after > r.o_quantity THEN
                ARRAY[format('execution %s: fills %s of order %s beyond its quantity %s (%s filled'
                           ' already)', r.exec_id, abs(r.quantity), r.order_id, r.o_quantity,
                           r.filled_after - abs(r.quantity)), 'execution_within_order_quantity']
            END AS problem
        FROM replayed r
    )
    SELECT array_agg(j.seq ORDER BY j.n), array_agg(j.filled_after ORDER BY j.n),
           array_agg(j.state[1] ORDER BY j.n), array_agg(j.state[2] ORDER BY j.n),
           array_agg(j.state[3] ORDER BY j.n),
           (SELECT k.problem FROM judged k WHERE k.problem IS NOT NULL ORDER BY k.n LIMIT 1)
    INTO seqs, filleds, qtys, avg_costs, pnls, problem
    FROM judged j;
    IF problem IS NOT NULL THEN
        PERFORM trading_refuse(problem[1], problem[2]);
    END IF;
END $$;

-- Executed by the application's role (the roles command grants it again to a role made
-- later: qvp_site/db/roles.py); what it calls runs as the owner within it.
REVOKE ALL ON FUNCTION trading_book_executions(bigint[], text[], bigint[], bigint[], bigint[],
    text[], numeric[], numeric[], numeric[], text[], text[], timestamptz[], text[], bigint[],
    text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_batch_by_statement(text[], bigint[], text[]),
    trading_book_batch_checked(text[], bigint[], bigint[], bigint[], text[], numeric[],
    numeric[], timestamptz[]) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trading_app') THEN
        GRANT EXECUTE ON FUNCTION trading_book_executions(bigint[], text[], bigint[], bigint[],
            bigint[], text[], numeric[], numeric[], numeric[], text[], text[], timestamptz[],
            text[], bigint[], text[]) TO trading_app;
    END IF;
END $$;

COMMIT;
