BEGIN;
--
-- Compress SystemLog with qvp_compress_job, which closes what it compresses
--
SELECT add_compression_policy('"signals_systemlog"'::regclass, (j.config->>'compress_after')::interval, schedule_interval => j.schedule_interval, if_not_exists => true) FROM timescaledb_information.jobs j WHERE j.proc_name = 'qvp_compress_job' AND j.config->>'hypertable' = 'signals_systemlog';
SELECT delete_job(job_id) FROM timescaledb_information.jobs WHERE proc_name = 'qvp_compress_job' AND config->>'hypertable' = 'signals_systemlog';
--
-- Compress Signal with qvp_compress_job, which closes what it compresses
--
SELECT add_compression_policy('"signals_signal"'::regclass, (j.config->>'compress_after')::interval, schedule_interval => j.schedule_interval, if_not_exists => true) FROM timescaledb_information.jobs j WHERE j.proc_name = 'qvp_compress_job' AND j.config->>'hypertable' = 'signals_signal';
SELECT delete_job(job_id) FROM timescaledb_information.jobs WHERE proc_name = 'qvp_compress_job' AND config->>'hypertable' = 'signals_signal';
COMMIT;
