BEGIN;
--
-- Compress Tick with qvp_compress_job, which closes what it compresses
--
SELECT add_compression_policy('"marketdata_tick"'::regclass, (j.config->>'compress_after')::interval, schedule_interval => j.schedule_interval, if_not_exists => true) FROM timescaledb_information.jobs j WHERE j.proc_name = 'qvp_compress_job' AND j.config->>'hypertable' = 'marketdata_tick';
SELECT delete_job(job_id) FROM timescaledb_information.jobs WHERE proc_name = 'qvp_compress_job' AND config->>'hypertable' = 'marketdata_tick';
--
-- Compress MinuteBar with qvp_compress_job, which closes what it compresses
--
SELECT add_compression_policy('"marketdata_minutebar"'::regclass, (j.config->>'compress_after')::interval, schedule_interval => j.schedule_interval, if_not_exists => true) FROM timescaledb_information.jobs j WHERE j.proc_name = 'qvp_compress_job' AND j.config->>'hypertable' = 'marketdata_minutebar';
SELECT delete_job(job_id) FROM timescaledb_information.jobs WHERE proc_name = 'qvp_compress_job' AND config->>'hypertable' = 'marketdata_minutebar';
COMMIT;
