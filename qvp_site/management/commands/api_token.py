from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from qvp_site.models import ApiToken
from qvp_site.tokens import create_token, revoke

ACTOR = "command:api_token"


class Command(BaseCommand):
    help = (
        "API tokens for programs: `create USER NAME [--days N]` prints a new key (shown this "
        "once; only its digest is kept), `list [--user USER] [--all]` shows tokens without "
        "their keys, `revoke ID` revokes one (it stays on record, with who and when)."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a token and print its key")
        create.add_argument("username")
        create.add_argument("name", help="the program or purpose the token is for")
        create.add_argument("--days", type=int, help="expires after this many days")
        listing = actions.add_parser("list", help="list tokens (never their keys)")
        listing.add_argument("--user", dest="username")
        listing.add_argument(
            "--all", dest="include_all", action="store_true", help="revoked and expired too"
        )
        revoking = actions.add_parser("revoke", help="revoke a token by its id")
        revoking.add_argument("token_id", type=int)

    def handle(self, *args, action, **options):
        getattr(self, f"_{action}")(**options)

    def _create(self, username, name, days, **options):
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        expires = timezone.now() + timedelta(days=days) if days else None
        token, key = create_token(_user(username), name, expires_at=expires, created_by=ACTOR)
        self.stderr.write(f"Token {token.pk} for {username} ({name}); the key, shown once:")
        self.stdout.write(key)

    def _list(self, username, include_all, **options):
        tokens = ApiToken.objects.select_related("user").order_by("user__username", "pk")
        if username:
            tokens = tokens.filter(user=_user(username))
        if not include_all:
            now = timezone.now()
            tokens = tokens.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        for t in tokens:
            state = f"revoked {t.revoked_at:%Y-%m-%d} by {t.revoked_by}" if t.revoked_at else ""
            expires = f"expires {t.expires_at:%Y-%m-%d}" if t.expires_at else "no expiry"
            used = f"last used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "unused"
            self.stdout.write(
                f"{t.pk:>5}  {t.user.get_username():<20} {t.prefix}…  {t.name:<30} "
                f"{expires}, {used} {state}".rstrip()
            )

    def _revoke(self, token_id, **options):
        tokens = ApiToken.objects.filter(pk=token_id)
        if not tokens.exists():
            raise CommandError(f"no token {token_id}")
        if not revoke(tokens, ACTOR):
            raise CommandError(f"token {token_id} was revoked already")
        self.stdout.write(f"Revoked token {token_id}.")


def _user(username: str):
    try:
        return get_user_model().objects.get_by_natural_key(username)
    except get_user_model().DoesNotExist as error:
        raise CommandError(f"no user {username!r}") from error
