BEGIN;
--
-- Create constraint volatility_value_finite on model volatilityestimate
--
ALTER TABLE "risk_volatilityestimate" DROP CONSTRAINT "volatility_value_finite";
--
-- Create constraint risk_metric_values_finite on model riskmetric
--
ALTER TABLE "risk_riskmetric" DROP CONSTRAINT "risk_metric_values_finite";
--
-- Create constraint risk_alert_values_finite on model riskalert
--
ALTER TABLE "risk_riskalert" DROP CONSTRAINT "risk_alert_values_finite";
--
-- Create constraint market_anomaly_values_finite on model marketanomaly
--
ALTER TABLE "risk_marketanomaly" DROP CONSTRAINT "market_anomaly_values_finite";
--
-- Create constraint factor_exposure_finite on model factorexposure
--
ALTER TABLE "risk_factorexposure" DROP CONSTRAINT "factor_exposure_finite";
COMMIT;
