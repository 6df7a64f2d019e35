-- An alert moves open -> acknowledged -> resolved (or open -> resolved), never back, and
-- what it says about the breach is never rewritten: whichever door the change comes through.
CREATE OR REPLACE FUNCTION risk_alert_legal_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.limit_id, NEW.account_id, NEW.metric, NEW.value, NEW.threshold, NEW.direction,
        NEW.severity, NEW.measured_at, NEW.raised_at)
       IS DISTINCT FROM
       (OLD.limit_id, OLD.account_id, OLD.metric, OLD.value, OLD.threshold, OLD.direction,
        OLD.severity, OLD.measured_at, OLD.raised_at) THEN
        RAISE EXCEPTION 'an alert''s breach is not edited; only its state moves'
            USING ERRCODE = '23514', CONSTRAINT = 'risk_alert_breach_unchanged';
    END IF;
    IF OLD.state = 'resolved' AND NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'alert % is resolved already', OLD.id
            USING ERRCODE = '23514', CONSTRAINT = 'risk_alert_legal_transition';
    END IF;
    IF OLD.state = 'acknowledged' AND NEW.state = 'open' THEN
        RAISE EXCEPTION 'alert % was acknowledged; it cannot be reopened', OLD.id
            USING ERRCODE = '23514', CONSTRAINT = 'risk_alert_legal_transition';
    END IF;
    IF OLD.acknowledged_at IS NOT NULL AND (NEW.acknowledged_at, NEW.acknowledged_by_id)
       IS DISTINCT FROM (OLD.acknowledged_at, OLD.acknowledged_by_id) THEN
        RAISE EXCEPTION 'alert % was acknowledged already', OLD.id
            USING ERRCODE = '23514', CONSTRAINT = 'risk_alert_legal_transition';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER risk_alert_legal_change BEFORE UPDATE ON risk_riskalert
FOR EACH ROW EXECUTE FUNCTION risk_alert_legal_change();

-- An alert carries its limit's account, so row-level security on the account is the limit's.
CREATE OR REPLACE FUNCTION risk_alert_matches_limit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM risk_risklimit l
                   WHERE l.id = NEW.limit_id AND l.account_id = NEW.account_id) THEN
        RAISE EXCEPTION 'an alert''s account is its limit''s'
            USING ERRCODE = '23514', CONSTRAINT = 'risk_alert_account_of_limit';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER risk_alert_matches_limit BEFORE INSERT ON risk_riskalert
FOR EACH ROW EXECUTE FUNCTION risk_alert_matches_limit();
