BEGIN;
--
-- Create constraint factor_exposure_finite on model factorexposure
--
ALTER TABLE "risk_factorexposure" ADD CONSTRAINT "factor_exposure_finite" CHECK (("exposure" > '-Infinity'::float8 AND "exposure" < 'Infinity'::float8));
--
-- Create constraint market_anomaly_values_finite on model marketanomaly
--
ALTER TABLE "risk_marketanomaly" ADD CONSTRAINT "market_anomaly_values_finite" CHECK (("value" > '-Infinity'::float8 AND "value" < 'Infinity'::float8 AND ("score" IS NULL OR ("score" > '-Infinity'::float8 AND "score" < 'Infinity'::float8))));
--
-- Create constraint risk_alert_values_finite on model riskalert
--
ALTER TABLE "risk_riskalert" ADD CONSTRAINT "risk_alert_values_finite" CHECK (("value" > '-Infinity'::float8 AND "value" < 'Infinity'::float8 AND "threshold" > '-Infinity'::float8 AND "threshold" < 'Infinity'::float8));
--
-- Create constraint risk_metric_values_finite on model riskmetric
--
ALTER TABLE "risk_riskmetric" ADD CONSTRAINT "risk_metric_values_finite" CHECK (("value" > '-Infinity'::float8 AND "value" < 'Infinity'::float8 AND ("confidence" IS NULL OR ("confidence" > '-Infinity'::float8 AND "confidence" < 'Infinity'::float8))));
--
-- Create constraint volatility_value_finite on model volatilityestimate
--
ALTER TABLE "risk_volatilityestimate" ADD CONSTRAINT "volatility_value_finite" CHECK (("value" > '-Infinity'::float8 AND "value" < 'Infinity'::float8));
COMMIT;
