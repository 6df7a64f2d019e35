"""OpenAPI descriptions of the site's own authentication classes (imported at start-up)."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class ActingSessionScheme(SessionScheme):
    target_class = "qvp_site.acting.ActingSessionAuthentication"


class ActingTokenScheme(OpenApiAuthenticationExtension):
    target_class = "qvp_site.acting.ActingTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Token",  # noqa: S106 - a keyword
        )
