BEGIN;
--
-- Create model FeatureBuild
--
DROP TABLE "vectors_featurebuild" CASCADE;
COMMIT;
