BEGIN;
--
-- Raw SQL operation
--
DROP FUNCTION IF EXISTS qvp_create_partition(regclass, text, timestamptz, timestamptz);
--
-- Raw SQL operation
--

DROP TRIGGER IF EXISTS qvp_audit_append_only ON qvp_site_auditentry;
DROP TRIGGER IF EXISTS qvp_audit_truncate ON qvp_site_auditentry;
DROP TRIGGER IF EXISTS qvp_audit_seal ON qvp_audit_head;
DROP FUNCTION IF EXISTS qvp_audit_guard_truncate(), qvp_audit_refuse_change(), qvp_audit_row(),
    qvp_audit_lock_head(), qvp_audit_seal();
DROP FUNCTION IF EXISTS qvp_audit_hash(text, bigint, text, text, text, jsonb, jsonb, text, text,
    timestamptz);
DROP TABLE IF EXISTS qvp_audit_head;

--
-- Create model AuditEntry
--
DROP TABLE "qvp_site_auditentry" CASCADE;
COMMIT;
