BEGIN;
--
-- Raw SQL operation
--

DROP TRIGGER IF EXISTS marketdata_action_kept ON marketdata_corporateaction;
DROP FUNCTION IF EXISTS marketdata_action_kept(),
    marketdata_action_set(bigint, text, date, numeric, numeric, text, date, bigint, numeric,
    numeric), marketdata_action_withdraw(bigint, text, date),
    marketdata_dailybar_adjusted(text, timestamptz),
    marketdata_minutebar_adjusted(text, timestamptz),
    marketdata_shares_factor(bigint, timestamptz, timestamptz, timestamptz),
    marketdata_factor_at(timestamptz, timestamptz[], double precision[]),
    marketdata_action_factors(text, timestamptz), marketdata_ex_moment(date),
    marketdata_close_before(bigint, timestamptz, timestamptz),
    marketdata_actions_known_at(timestamptz);

--
-- Audit every change of CorporateAction
--
DROP TRIGGER IF EXISTS qvp_audit ON "marketdata_corporateaction";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "marketdata_corporateaction";
--
-- Create model CorporateAction
--
DROP TABLE "marketdata_corporateaction" CASCADE;
--
-- Add field adjusted_through to ingest
--
ALTER TABLE "marketdata_ingest" DROP COLUMN "adjusted_through" CASCADE;
COMMIT;
