BEGIN;
--
-- Raw SQL operation
--
DROP FUNCTION IF EXISTS marketdata_merge_bars(regclass, bigint, timestamptz[], double precision[], double precision[], double precision[], double precision[], double precision[], double precision[], integer[]);
COMMIT;
