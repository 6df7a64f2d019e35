"""Single-or-batch creates: one object, or a list of up to ``MAX_BATCH``, validated whole.

A batch with a bad item is refused whole, 400 with each bad item's index and fields, before
anything is written; what writes it is the domain's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from rest_framework import serializers
from rest_framework.settings import api_settings

MAX_BATCH = 10_000


@dataclass(frozen=True)
class Batch:
    """What was posted: ``items`` (one object becomes a list of one) and whether it was one."""

    items: list[Any]
    single: bool

    @classmethod
    def of(cls, data: Any) -> Batch:
        single = not isinstance(data, list)
        return cls([data] if single else data, single)

    def validated(
        self,
        serializer_class: type[serializers.Serializer[Any]],
        context: Callable[[list[Any]], dict[str, Any]] | None = None,
        *,
        one_by_its_fields: bool = False,
    ) -> serializers.ListSerializer[Any]:
        """The items validated by ``serializer_class(many=True)`` (with ``context`` made from
        the items, e.g. their records looked up at once), or a 400 naming each bad item's
        index. ``one_by_its_fields``: an object posted alone is refused by its fields alone,
        as it is answered alone (no index)."""
        # What serializer_class(many=True) makes: its Meta's list serializer (a ListSerializer).
        batch = cast(
            "serializers.ListSerializer[Any]",
            serializer_class.many_init(
                data=self.items,
                allow_empty=False,
                max_length=MAX_BATCH,
                context=context(self.items) if context else {},
            ),
        )
        if not batch.is_valid():
            # Each item's errors in a list, or the batch's own (not a list, empty...) in a dict.
            found: list[Any] | dict[Any, Any] = batch.errors
            errors: dict[Any, Any] = (  # by the item's index (an int; DRF writes it as text)
                {index: error for index, error in enumerate(found) if error}
                if isinstance(found, list)
                else found
            )
            if self.single and one_by_its_fields:
                raise serializers.ValidationError(_by_fields(errors.get(0, errors)))
            raise serializers.ValidationError(errors)
        return batch


def _by_fields(errors: Any) -> dict[Any, Any]:
    """An object's refusals by field; an item refused whole (``null``: no object at all) by
    ``non_field_errors``, as DRF refuses a serializer given no data, not as a bare list."""
    return errors if isinstance(errors, dict) else {api_settings.NON_FIELD_ERRORS_KEY: errors}
