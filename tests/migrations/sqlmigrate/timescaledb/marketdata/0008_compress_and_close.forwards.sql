BEGIN;
--
-- Compress MinuteBar with qvp_compress_job, which closes what it compresses
--
SELECT add_job('qvp_compress_job', j.schedule_interval, config => jsonb_build_object('hypertable', 'marketdata_minutebar', 'compress_after', j.config->>'compress_after'), job_name => 'Compress and close marketdata_minutebar') FROM timescaledb_information.jobs j WHERE j.proc_name = 'policy_compression' AND j.hypertable_schema = 'public' AND j.hypertable_name = 'marketdata_minutebar';
SELECT remove_compression_policy('"marketdata_minutebar"'::regclass, if_exists => true);
--
-- Compress Tick with qvp_compress_job, which closes what it compresses
--
SELECT add_job('qvp_compress_job', j.schedule_interval, config => jsonb_build_object('hypertable', 'marketdata_tick', 'compress_after', j.config->>'compress_after'), job_name => 'Compress and close marketdata_tick') FROM timescaledb_information.jobs j WHERE j.proc_name = 'policy_compression' AND j.hypertable_schema = 'public' AND j.hypertable_name = 'marketdata_tick';
SELECT remove_compression_policy('"marketdata_tick"'::regclass, if_exists => true);
COMMIT;
