BEGIN;
--
-- Create model SocialSentiment
--
DROP TABLE "signals_socialsentiment" CASCADE;
--
-- Create model SignalPerformance
--
DROP TABLE "signals_signalperformance" CASCADE;
--
-- Create model Signal
--
DROP TABLE "signals_signal" CASCADE;
--
-- Create model ModelPerformance
--
DROP TABLE "signals_modelperformance" CASCADE;
--
-- Create model FusedSignal
--
DROP TABLE "signals_fusedsignal" CASCADE;
--
-- Create model AlternativeData
--
DROP TABLE "signals_alternativedata" CASCADE;
--
-- Create model AgentMetric
--
DROP TABLE "signals_agentmetric" CASCADE;
--
-- Create model SystemLog
--
DROP TABLE "signals_systemlog" CASCADE;
--
-- Create model NewsArticle
--
DROP TABLE "signals_newsarticle" CASCADE;
--
-- Create model Agent
--
DROP TABLE "signals_agent" CASCADE;
COMMIT;
