BEGIN;
--
-- Compress Tick with qvp_compress_job, which closes what it compresses
--
-- (no-op)
--
-- Compress MinuteBar with qvp_compress_job, which closes what it compresses
--
-- (no-op)
COMMIT;
