"""OpenAPI descriptions of the site's own authentication classes (imported at start-up)."""

from drf_spectacular.authentication import SessionScheme, TokenScheme


class ActingSessionScheme(SessionScheme):
    target_class = "qvp_site.acting.ActingSessionAuthentication"


class ActingTokenScheme(TokenScheme):
    target_class = "qvp_site.acting.ActingTokenAuthentication"
