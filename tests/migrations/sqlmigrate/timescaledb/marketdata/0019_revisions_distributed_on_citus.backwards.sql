BEGIN;
--
-- On Citus, distribute OptionQuoteRevision along MinuteBar
--
-- (no-op)
--
-- On Citus, distribute TickRevision along MinuteBar
--
-- (no-op)
--
-- On Citus, distribute DailyBarRevision along MinuteBar
--
-- (no-op)
--
-- On Citus, distribute MinuteBarRevision along MinuteBar
--
-- (no-op)
COMMIT;
