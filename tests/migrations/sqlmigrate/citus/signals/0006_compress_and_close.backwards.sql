BEGIN;
--
-- Compress SystemLog with qvp_compress_job, which closes what it compresses
--
-- (no-op)
--
-- Compress Signal with qvp_compress_job, which closes what it compresses
--
-- (no-op)
COMMIT;
