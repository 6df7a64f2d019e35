"""What PgBouncer's transaction pooling needs of the app: no prepared statements, no
server-side cursors, no identity left on a connection after its transaction."""

from __future__ import annotations

import os
import subprocess
import sys

from django.db import connection, transaction

from qvp_site.acting import declare


def test_django_prepares_no_statements(db):
    connection.ensure_connection()
    assert connection.connection.prepare_threshold is None
    with connection.cursor() as cursor:
        for _ in range(10):  # psycopg would prepare after 5 runs with a threshold
            cursor.execute("SELECT count(*) FROM django_migrations WHERE app = %s", ["trading"])
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0


def test_transaction_pooling_turns_server_side_cursors_off():
    probe = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'qvp_site.settings');"
        " django.setup(); from django.conf import settings;"
        " print(settings.DATABASES['default']['DISABLE_SERVER_SIDE_CURSORS'])"
    )
    for value, expected in (("true", "True"), ("false", "False")):
        out = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, "QVP_TRANSACTION_POOLING": value},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert out.stdout.strip().splitlines()[-1] == expected


def test_the_acting_user_does_not_outlive_its_transaction(transactional_db, django_user_model):
    user = django_user_model.objects.create_user("pooled", password="pw-pooled-1234")
    with transaction.atomic():
        declare(user)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('qvp.user_id', true)")
            assert cursor.fetchone()[0] == str(user.pk)
    # The next transaction on this server connection (another client's, behind PgBouncer).
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting('qvp.user_id', true), '')")
        assert cursor.fetchone()[0] == ""
