BEGIN;
--
-- Raw SQL operation
--
DROP PROCEDURE IF EXISTS qvp_compress_job(integer, jsonb); DROP FUNCTION IF EXISTS qvp_compress_chunks(regclass, interval); DROP FUNCTION IF EXISTS qvp_close_timescaledb_chunks();
COMMIT;
