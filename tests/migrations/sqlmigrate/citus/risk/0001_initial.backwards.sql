BEGIN;
--
-- Create constraint volatility_not_negative on model volatilityestimate
--
ALTER TABLE "risk_volatilityestimate" DROP CONSTRAINT "volatility_not_negative";
--
-- Create constraint volatility_window_positive on model volatilityestimate
--
ALTER TABLE "risk_volatilityestimate" DROP CONSTRAINT "volatility_window_positive";
--
-- Create constraint volatility_timeframe_known on model volatilityestimate
--
ALTER TABLE "risk_volatilityestimate" DROP CONSTRAINT "volatility_timeframe_known";
--
-- Create constraint volatility_estimator_known on model volatilityestimate
--
ALTER TABLE "risk_volatilityestimate" DROP CONSTRAINT "volatility_estimator_known";
--
-- Create constraint volatility_estimate_key on model volatilityestimate
--
ALTER TABLE "risk_volatilityestimate" DROP CONSTRAINT "volatility_estimate_key";
--
-- Create constraint risk_metric_confidence_range on model riskmetric
--
ALTER TABLE "risk_riskmetric" DROP CONSTRAINT "risk_metric_confidence_range";
--
-- Create constraint risk_metric_known on model riskmetric
--
ALTER TABLE "risk_riskmetric" DROP CONSTRAINT "risk_metric_known";
--
-- Create constraint risk_metric_key on model riskmetric
--
ALTER TABLE "risk_riskmetric" DROP CONSTRAINT "risk_metric_key";
--
-- Create constraint risk_alert_resolved_by_whom on model riskalert
--
ALTER TABLE "risk_riskalert" DROP CONSTRAINT "risk_alert_resolved_by_whom";
--
-- Create constraint risk_alert_acknowledged_by_whom on model riskalert
--
ALTER TABLE "risk_riskalert" DROP CONSTRAINT "risk_alert_acknowledged_by_whom";
--
-- Create constraint risk_alert_severity_known on model riskalert
--
ALTER TABLE "risk_riskalert" DROP CONSTRAINT "risk_alert_severity_known";
--
-- Create constraint risk_alert_state_known on model riskalert
--
ALTER TABLE "risk_riskalert" DROP CONSTRAINT "risk_alert_state_known";
--
-- Create constraint risk_alert_one_open on model riskalert
--
DROP INDEX IF EXISTS "risk_alert_one_open";
--
-- Create index risk_alert_by_state_idx on field(s) account, state, -raised_at of model riskalert
--
DROP INDEX IF EXISTS "risk_alert_by_state_idx";
--
-- Create constraint risk_limit_threshold_finite on model risklimit
--
ALTER TABLE "risk_risklimit" DROP CONSTRAINT "risk_limit_threshold_finite";
--
-- Create constraint risk_limit_severity_known on model risklimit
--
ALTER TABLE "risk_risklimit" DROP CONSTRAINT "risk_limit_severity_known";
--
-- Create constraint risk_limit_direction_known on model risklimit
--
ALTER TABLE "risk_risklimit" DROP CONSTRAINT "risk_limit_direction_known";
--
-- Create constraint risk_limit_metric_known on model risklimit
--
ALTER TABLE "risk_risklimit" DROP CONSTRAINT "risk_limit_metric_known";
--
-- Create constraint risk_limit_unique on model risklimit
--
ALTER TABLE "risk_risklimit" DROP CONSTRAINT "risk_limit_unique";
--
-- Create model AlertDelivery
--
DROP TABLE "risk_alertdelivery" CASCADE;
--
-- Create model MarketAnomaly
--
DROP TABLE "risk_marketanomaly" CASCADE;
--
-- Create model FactorExposure
--
DROP TABLE "risk_factorexposure" CASCADE;
--
-- Create model VolatilityEstimate
--
DROP TABLE "risk_volatilityestimate" CASCADE;
--
-- Create model RiskMetric
--
DROP TABLE "risk_riskmetric" CASCADE;
--
-- Create model RiskAlert
--
DROP TABLE "risk_riskalert" CASCADE;
--
-- Create model RiskLimit
--
DROP TABLE "risk_risklimit" CASCADE;
COMMIT;
