BEGIN;
--
-- Raw SQL operation
--
DROP VIEW IF EXISTS system_health;DROP VIEW IF EXISTS system_slow_statements;DROP VIEW IF EXISTS system_replication;DROP VIEW IF EXISTS system_connections;DROP VIEW IF EXISTS system_index_usage;DROP VIEW IF EXISTS system_table_sizes;DROP FUNCTION IF EXISTS qvp_index_usage();DROP FUNCTION IF EXISTS qvp_connections();DROP FUNCTION IF EXISTS qvp_replication();DROP FUNCTION IF EXISTS qvp_slow_statements(integer);
COMMIT;
