"""The group ``auditors``: reads every account (row-level security) and changes nothing.

Its view permissions are granted here where they exist already, and after every migrate by
``qvp_site.admin_access.grant_auditors_view`` (on a fresh database Django makes permissions only
after the last migration, and later apps are covered the same way).
"""

from django.db import migrations

from qvp_site.admin_access import ensure_auditors, project_app_labels


def create_auditors(apps, schema_editor):
    ensure_auditors(apps, schema_editor.connection.alias, project_app_labels())


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0003_security"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversing keeps the group: removing it would drop its members' memberships.
    operations = [migrations.RunPython(create_auditors, migrations.RunPython.noop)]
