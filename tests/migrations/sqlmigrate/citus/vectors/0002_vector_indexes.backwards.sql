BEGIN;
--
-- Create hnsw index strategypattern_cosine_hnsw on StrategyPattern.state for cosine distance (m=16, ef_construction=64)
--
DROP INDEX IF EXISTS "strategypattern_cosine_hnsw";
--
-- Create hnsw index volatilityregime_cosine_hnsw on VolatilityRegime.signature for cosine distance (m=16, ef_construction=64)
--
DROP INDEX IF EXISTS "volatilityregime_cosine_hnsw";
--
-- Create hnsw index featureembedding_cosine_hnsw on FeatureEmbedding.embedding for cosine distance (m=16, ef_construction=64)
--
DROP INDEX IF EXISTS "featureembedding_cosine_hnsw";
COMMIT;
