BEGIN;
--
-- Create model Archive
--
DROP TABLE "qvp_site_archive" CASCADE;
COMMIT;
