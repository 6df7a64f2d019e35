BEGIN;
--
-- Raw SQL operation
--
DROP FUNCTION IF EXISTS qvp_close_chunks() CASCADE; DROP FUNCTION IF EXISTS qvp_close_relations(regclass[]);
COMMIT;
