"""The group ``auditors``: reads every account (row-level security) and changes nothing.

Its view permissions are granted here where they exist already, and after every migrate by
``qvp_site.admin_access.grant_auditors_view`` (on a fresh database Django makes permissions only
after the last migration, and later apps are covered the same way). The code is this
migration's own, as it was when released: it imports nothing of the project.
"""

from django.db import migrations

AUDITORS = "auditors"
# The project's apps when this migration was released; later ones get their view permissions
# from grant_auditors_view.
APP_LABELS = ["qvp_site", "marketdata", "trading"]


def create_auditors(apps, schema_editor):
    using = schema_editor.connection.alias
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.using(using).get_or_create(name=AUDITORS)
    views = permission_model.objects.using(using).filter(
        content_type__app_label__in=APP_LABELS, codename__startswith="view_"
    )
    group.permissions.add(*views)


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0003_security"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversing keeps the group: removing it would drop its members' memberships.
    operations = [migrations.RunPython(create_auditors, migrations.RunPython.noop)]
