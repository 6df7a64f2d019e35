"""The site's settings as the type checker reads them (mypy's django-stubs plugin imports them).

They are ``qvp_site.settings`` unchanged, except that without DATABASE_URL that module starts
the embedded PostgreSQL server on import; a type check needs no database, so here one is named
(never connected to) unless the environment names one.
"""

from __future__ import annotations

import os

os.environ.setdefault("DATABASE_URL", "postgres://typecheck@localhost.invalid/qvp")

from qvp_site.settings import *  # noqa: F403
