-- Row-level security on risk's account-scoped tables, as on trading's (trading/sql/security):
-- reading needs the account visible, writing needs it writable. Installed by risk 0002.

ALTER TABLE "risk_riskmetric" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "risk_riskmetric";
DROP POLICY IF EXISTS account_insert ON "risk_riskmetric";
DROP POLICY IF EXISTS account_update ON "risk_riskmetric";
DROP POLICY IF EXISTS account_delete ON "risk_riskmetric";
CREATE POLICY account_read ON "risk_riskmetric"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "risk_riskmetric"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "risk_riskmetric"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "risk_riskmetric"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "risk_factorexposure" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "risk_factorexposure";
DROP POLICY IF EXISTS account_insert ON "risk_factorexposure";
DROP POLICY IF EXISTS account_update ON "risk_factorexposure";
DROP POLICY IF EXISTS account_delete ON "risk_factorexposure";
CREATE POLICY account_read ON "risk_factorexposure"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "risk_factorexposure"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "risk_factorexposure"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "risk_factorexposure"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "risk_risklimit" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "risk_risklimit";
DROP POLICY IF EXISTS account_insert ON "risk_risklimit";
DROP POLICY IF EXISTS account_update ON "risk_risklimit";
DROP POLICY IF EXISTS account_delete ON "risk_risklimit";
CREATE POLICY account_read ON "risk_risklimit"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "risk_risklimit"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "risk_risklimit"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "risk_risklimit"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "risk_riskalert" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "risk_riskalert";
DROP POLICY IF EXISTS account_insert ON "risk_riskalert";
DROP POLICY IF EXISTS account_update ON "risk_riskalert";
DROP POLICY IF EXISTS account_delete ON "risk_riskalert";
CREATE POLICY account_read ON "risk_riskalert"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "risk_riskalert"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "risk_riskalert"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "risk_riskalert"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "risk_alertdelivery" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "risk_alertdelivery";
DROP POLICY IF EXISTS account_insert ON "risk_alertdelivery";
DROP POLICY IF EXISTS account_update ON "risk_alertdelivery";
DROP POLICY IF EXISTS account_delete ON "risk_alertdelivery";
CREATE POLICY account_read ON "risk_alertdelivery"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "risk_alertdelivery"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "risk_alertdelivery"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "risk_alertdelivery"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
