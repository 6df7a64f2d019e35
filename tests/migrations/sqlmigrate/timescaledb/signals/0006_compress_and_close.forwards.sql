BEGIN;
--
-- Compress Signal with qvp_compress_job, which closes what it compresses
--
SELECT add_job('qvp_compress_job', j.schedule_interval, config => jsonb_build_object('hypertable', 'signals_signal', 'compress_after', j.config->>'compress_after'), job_name => 'Compress and close signals_signal') FROM timescaledb_information.jobs j WHERE j.proc_name = 'policy_compression' AND j.hypertable_schema = 'public' AND j.hypertable_name = 'signals_signal';
SELECT remove_compression_policy('"signals_signal"'::regclass, if_exists => true);
--
-- Compress SystemLog with qvp_compress_job, which closes what it compresses
--
SELECT add_job('qvp_compress_job', j.schedule_interval, config => jsonb_build_object('hypertable', 'signals_systemlog', 'compress_after', j.config->>'compress_after'), job_name => 'Compress and close signals_systemlog') FROM timescaledb_information.jobs j WHERE j.proc_name = 'policy_compression' AND j.hypertable_schema = 'public' AND j.hypertable_name = 'signals_systemlog';
SELECT remove_compression_policy('"signals_systemlog"'::regclass, if_exists => true);
COMMIT;
