"""The OpenAPI schema as the site answers: its authentication classes (imported at start-up),
the schema class that requires what every answer carries, and the post-processing hooks that
document the refusals every operation can answer and keep a blank formatted text matching
once (settings.SPECTACULAR_SETTINGS)."""

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import serializers
from rest_framework.fields import empty


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


class SiteAutoSchema(AutoSchema):
    """drf-spectacular's schema, with each answer's fields required that the answer always
    carries: drf-spectacular requires only the read-only ones and those required on input, so a
    generated client would type ``Order.order_type`` or ``Bar.volume`` as possibly absent."""

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and "properties" in schema:
            written = [name for name in schema["properties"] if _always_written(serializer, name)]
            schema["required"] = sorted(set(schema.get("required", ())) | set(written))
        return schema


def _always_written(serializer: serializers.BaseSerializer, name: str) -> bool:
    """Whether DRF writes the field into every answer: a model's fields always; of a plain
    serializer fed a dict, a field without a value is left out unless it is required, has a
    default or may be null (``Field.get_attribute``)."""
    field = serializer.fields[name]  # type: ignore[attr-defined]
    if isinstance(serializer, serializers.ModelSerializer):
        return True
    return bool(field.required or field.default is not empty or field.allow_null)


ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
    "description": "Why the request was refused.",
}
# DRF's refusals of bad input: {field: [reasons]} for an object (a field of a nested object
# or list holds its own refusals in the same shape), a list of those for a batch, one per
# item ({} for an item refused for nothing); or a rule of the database: {detail, rule, index}
# (qvp_site/api/errors.py's Refused).
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {},
    "description": (
        "Each field refused, by name, with its reasons (a list of text, or the refusals of its"
        " own fields); or, refused by a rule of the database, detail, rule and the index of"
        " the batch item."
    ),
}
VALIDATION_ERROR = {
    "oneOf": [
        {"$ref": "#/components/schemas/FieldErrors"},
        {"type": "array", "items": {"$ref": "#/components/schemas/FieldErrors"}},
    ],
    "description": "The fields refused; for a batch, a list of those, one per item.",
}
REFUSALS = {
    "400": ("Bad input: each field refused, with its reasons", "ValidationError"),
    "401": ("No valid credentials", "Error"),
    "403": ("Not allowed for this user (or no credentials)", "Error"),
    "404": ("No such object, or none this user may see", "Error"),
    "406": ("A format (?format= or Accept) this operation does not offer", "Error"),
    "413": ("The request body is larger than the site accepts", "Error"),
    "415": ("The body is not in a media type the operation reads (JSON)", "Error"),
    "429": ("Too many requests: retry after the Retry-After header's seconds", "Error"),
    "503": (
        "A statement ran past its time limit (a lock held, a heavy read), or the database"
        " could not serve (a server or worker unavailable, a deadlock): the request was"
        " rolled back; retry after the Retry-After header's seconds",
        "Error",
    ),
}
# The answers that say when to come back.
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again",
        "schema": {"type": "integer", "minimum": 0},
    }
}
METHODS = ("get", "put", "post", "patch", "delete")


def document_refusals(result, generator, request, public):
    """drf-spectacular post-processing hook: every operation documents the refusals every
    view can answer with (drf-spectacular lists only the success), so that clients, and the
    schema-driven fuzz test, know them."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR)
    components.setdefault("FieldErrors", FIELD_ERRORS)
    components.setdefault("ValidationError", VALIDATION_ERROR)
    for name, component in components.items():
        if name.startswith("Paginated") and "properties" in component:
            component["required"] = list(component["properties"])  # null when no page
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            # Any operation answers 406 to an Accept it cannot satisfy (text/csv of a record).
            for status, (description, schema) in REFUSALS.items():
                if status in ("413", "415") and "requestBody" not in operation:
                    continue
                responses.setdefault(status, _refusal(status, description, schema))
            _body_required(operation, components)
    return result


def _refusal(status: str, description: str, schema: str) -> dict:
    refusal: dict = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if status in ("429", "503"):
        refusal["headers"] = RETRY_AFTER
    return refusal


def _body_required(operation: dict, components: dict) -> None:
    """A body that is one object or a batch (a ``oneOf`` component) is required, as the view
    refuses its absence naming the fields: drf-spectacular marks a body required only by a
    serializer's required fields, which a ``oneOf`` has none of."""
    body = operation.get("requestBody")
    if not body:
        return
    for media in body.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        if "oneOf" in components.get(ref.rsplit("/", 1)[-1], {}):
            body["required"] = True


BLANK = {"type": "string", "maxLength": 0}


def blank_matches_once(result, generator, request, public):
    """drf-spectacular post-processing hook: a text field with a format that may be blank
    (a URL, an e-mail address) is documented as ``oneOf: [the format, ""]``; but a ``oneOf``
    must match exactly one branch, and "" matches both (a string of length 0 has any format
    jsonschema checks, and any ``maxLength``). ``anyOf`` says what is meant."""
    _any_of_blank(result.get("components", {}).get("schemas", {}))
    return result


def _any_of_blank(node: object) -> None:
    if isinstance(node, list):
        for item in node:
            _any_of_blank(item)
        return
    if not isinstance(node, dict):
        return
    if BLANK in node.get("oneOf", ()):
        node["anyOf"] = node.pop("oneOf")
    for value in node.values():
        _any_of_blank(value)
