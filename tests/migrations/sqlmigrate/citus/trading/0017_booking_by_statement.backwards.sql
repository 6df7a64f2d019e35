BEGIN;
--
-- Raw SQL operation
--

DROP TRIGGER IF EXISTS trading_execution_books ON trading_execution;
CREATE TRIGGER trading_execution_books BEFORE INSERT ON trading_execution FOR EACH ROW
    EXECUTE FUNCTION trading_execution_books();
DROP FUNCTION IF EXISTS trading_book_executions(bigint[], text[], bigint[], bigint[], bigint[],
    text[], numeric[], numeric[], numeric[], text[], text[], timestamptz[], text[], bigint[],
    text[]);
DROP FUNCTION IF EXISTS trading_book_batch_checked(text[], bigint[], bigint[], bigint[], text[],
    numeric[], numeric[], timestamptz[]);
DROP FUNCTION IF EXISTS trading_batch_by_statement(text[], bigint[], text[]);
DROP TRIGGER IF EXISTS trading_cash_from_executions ON trading_cashentry;
CREATE TRIGGER trading_cash_from_executions BEFORE INSERT ON trading_cashentry FOR EACH ROW
    EXECUTE FUNCTION trading_cash_from_executions();
DROP FUNCTION IF EXISTS trading_books_batch();
DROP FUNCTION IF EXISTS trading_books_owner_writing();
DROP AGGREGATE IF EXISTS trading_position_replay(numeric, numeric, numeric, numeric, numeric,
    numeric);
DROP FUNCTION IF EXISTS trading_position_fold(numeric[], numeric, numeric, numeric, numeric,
    numeric, numeric);

COMMIT;
