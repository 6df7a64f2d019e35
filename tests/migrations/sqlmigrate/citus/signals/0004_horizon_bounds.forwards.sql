BEGIN;
--
-- Remove constraint signal_horizon_positive from model signal
--
ALTER TABLE "signals_signal" DROP CONSTRAINT "signal_horizon_positive";
--
-- Create constraint signal_horizon_positive on model signal
--
ALTER TABLE "signals_signal" ADD CONSTRAINT "signal_horizon_positive" CHECK ("horizon" > '0:00:00'::interval);
--
-- Create constraint signal_horizon_at_most_a_year on model signal
--
ALTER TABLE "signals_signal" ADD CONSTRAINT "signal_horizon_at_most_a_year" CHECK ("horizon" <= '366 days 0:00:00'::interval);
COMMIT;
