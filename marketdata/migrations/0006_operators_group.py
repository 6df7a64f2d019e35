"""The group ``operators``: the users who write market data (instruments, bars, ticks, option
quotes, ingests) through the API and the admin.

Writing market data takes the model's add or change permission; this group holds them (and the
view ones) for the market-data models. They are granted here where they exist already, and
after every migrate by ``qvp_site.operators.grant_operators_permissions`` (on a fresh database
Django makes permissions only after the last migration). The code is this migration's own, as
it was when released: it imports nothing of the project.
"""

from django.db import migrations

OPERATORS = "operators"
# The market-data models the API and the admin write, when this migration was released.
MODELS = ["instrument", "minutebar", "dailybar", "tick", "optionquote", "ingest"]
ACTIONS = ["add", "change", "view"]


def create_operators(apps, schema_editor):
    using = schema_editor.connection.alias
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.using(using).get_or_create(name=OPERATORS)
    codenames = [f"{action}_{model}" for model in MODELS for action in ACTIONS]
    permissions = permission_model.objects.using(using).filter(
        content_type__app_label="marketdata", codename__in=codenames
    )
    group.permissions.add(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0005_references_by_statement"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversing keeps the group: removing it would drop its members' memberships.
    operations = [migrations.RunPython(create_operators, migrations.RunPython.noop)]
