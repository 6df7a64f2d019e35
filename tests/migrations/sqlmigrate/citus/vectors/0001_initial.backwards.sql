BEGIN;
--
-- Create model VolatilityRegime
--
DROP TABLE "vectors_volatilityregime" CASCADE;
--
-- Create model StrategyPattern
--
DROP TABLE "vectors_strategypattern" CASCADE;
--
-- Create model FeatureEmbedding
--
DROP TABLE "vectors_featureembedding" CASCADE;
--
-- Create model FeatureSet
--
DROP TABLE "vectors_featureset" CASCADE;
COMMIT;
