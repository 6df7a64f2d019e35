"""API tokens for programs: made, checked and revoked here, kept only as a SHA-256 digest.

A key is ``qvp_`` and 43 random URL-safe characters (256 bits): far too many to guess, so one
fast hash is enough (a slow password hash protects low-entropy secrets, which a key is not),
and a lookup by digest costs one index probe per request. Programs send it as
``Authorization: Token <key>`` (or ``Bearer <key>``); a wrong key counts against the
address's rate of requests without a user (qvp_site/throttling.py).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework import authentication, exceptions

from qvp_site.models import ApiToken
from qvp_site.throttling import count_anonymous

KEY_PREFIX = "qvp_"
# last_used_at is written at most this often per token, not on every request.
LAST_USED_GRANULARITY = timedelta(minutes=5)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(token: ApiToken) -> str:
    """Give an unsaved token a new key (its prefix and digest); returns the key."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token.prefix, token.digest = key[: len(KEY_PREFIX) + 6], digest(key)
    return key


def may_issue(requester: User, user: User) -> bool:
    """Whether ``requester`` may make a token for ``user``: a token acts as its user, so a
    user makes tokens for themselves only, and one for another user is the superuser's alone
    (a staff user with add_apitoken would otherwise act as anyone, the superuser included).
    The command ``api_token`` is run by whoever owns the site's shell and is not asked."""
    return requester.is_active and (requester.is_superuser or requester.pk == user.pk)


def create_token(
    user: User, name: str, *, expires_at: datetime | None = None, created_by: str = ""
) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns it and its key, which is never shown again."""
    token = ApiToken(user=user, name=name, expires_at=expires_at, created_by=created_by)
    key = issue_key(token)
    token.save()
    return token, key


def revoke(tokens, by: str) -> int:
    """Revoke the tokens of a queryset not revoked yet; returns how many."""
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now(), revoked_by=by)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("token", "bearer")

    def authenticate(self, request):
        words = authentication.get_authorization_header(request).split()
        if not words or words[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if len(words) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Token <key>, with one key")
        try:
            return self._check(words[1].decode("ascii"))
        except (exceptions.AuthenticationFailed, UnicodeDecodeError) as error:
            count_anonymous(request)  # a wrong key counts as a request without a user
            if isinstance(error, UnicodeDecodeError):
                raise exceptions.AuthenticationFailed("a key is ASCII, and this is not") from error
            raise

    def _check(self, key: str):
        token = self._find(digest(key))
        now = self._now(token)
        if token is None or token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("invalid or revoked token")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("expired token")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("the token's user is inactive")
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
            ApiToken.objects.using("default").filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    @staticmethod
    def _now(token: ApiToken | None):
        """The moment a token's expiry is judged at: the database's, when the lookup judged
        it there too (``ActingTokenAuthentication``), so that both say the same; else now,
        after the lookup (never earlier than the database's clock then)."""
        return getattr(token, "judged_at", None) or timezone.now()

    def _find(self, key_digest: str) -> ApiToken | None:
        """The token of this digest with its user, or None.

        On the primary: a revoked token or a deactivated user must not live on in a lagging
        replica (qvp_site/replicas.py would route this read there)."""
        tokens = ApiToken.objects.using("default").select_related("user")
        return tokens.filter(digest=key_digest).first()

    def authenticate_header(self, request) -> str:
        return "Token"
