#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")
    try:
        from django.core.management import execute_from_command_line

        from qvp_site.db.postmaster import ServerError
    except KeyboardInterrupt:  # Ctrl-C while Python loads Django
        sys.exit(130)
    try:
        execute_from_command_line(sys.argv)
    except Exception as error:
        cause = error if isinstance(error, ServerError) else error.__cause__
        while cause is not None and not isinstance(cause, ServerError):
            cause = cause.__cause__
        if cause is None:
            raise
        # The embedded server could not be made or started: say why, in a line.
        sys.stderr.write(f"the embedded database server: {cause}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        # Ctrl-C: what was committed stays, the open transaction is rolled back by the server
        # when the connection drops. Say so in a line, not a traceback.
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
