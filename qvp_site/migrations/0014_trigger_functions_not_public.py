"""The owner's trigger functions run by no one else: EXECUTE revoked from PUBLIC.

A SECURITY DEFINER trigger function runs with the owner's rights whoever fires it, and EXECUTE
is checked when a trigger is made, not when it fires. Granted to PUBLIC (PostgreSQL's default
for a new function), any role that may make a table, a temporary one included, could attach
one to its own table with arguments of its choosing, and have the owner lock, read or write
what the arguments name. Revoked here from every such function of the apps; a test keeps
new ones the same (tests/qvp_site/test_role_access.py). The triggers the owner made fire as
before.

After the last migration of every app, whose functions it revokes. Unapplied, nothing is given
back to PUBLIC."""

from django.db import migrations

REVOKE = """
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
               AND p.prorettype = 'trigger'::regtype
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("qvp_site", "0013_summaries_refreshed_in_sql"),
        ("marketdata", "0019_revisions_distributed_on_citus"),
        ("trading", "0019_metrics_latest_nav"),
        ("risk", "0008_sql_anomalies"),
        ("signals", "0009_alternative_data_plural"),
        ("vectors", "0006_feature_index_for_writes"),
    ]

    operations = [migrations.RunSQL(REVOKE, migrations.RunSQL.noop)]
