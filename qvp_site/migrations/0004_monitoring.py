"""The monitoring views (system_health and the views behind it): see qvp_site/db/monitoring.py."""

from django.db import migrations

from qvp_site.db import monitoring

# Roles that create_db_roles made before this migration ran get the functions now; roles made
# later get them from create_db_roles itself.
GRANT_EXISTING_ROLES = """
DO $$
DECLARE
    role_name text;
    fn text;
BEGIN
    FOR role_name IN SELECT rolname FROM pg_roles
                     WHERE rolname IN ('trading_app', 'trading_readonly') LOOP
        FOREACH fn IN ARRAY {} LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, role_name);
        END LOOP;
        EXECUTE format('GRANT SELECT ON %s TO %I', '{}', role_name);
    END LOOP;
END $$;
""".format(
    "ARRAY[" + ", ".join(f"'{f}'" for f in monitoring.FUNCTIONS) + "]",
    ", ".join(monitoring.VIEWS),
)


class Migration(migrations.Migration):
    dependencies = [("qvp_site", "0003_pending_refresh")]

    operations = [
        migrations.RunSQL(monitoring.INSTALL + GRANT_EXISTING_ROLES, monitoring.UNINSTALL),
    ]
