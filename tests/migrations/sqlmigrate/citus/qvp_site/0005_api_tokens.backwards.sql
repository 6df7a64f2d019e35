BEGIN;
--
-- Create model ApiToken
--
DROP TABLE "qvp_site_apitoken" CASCADE;
COMMIT;
