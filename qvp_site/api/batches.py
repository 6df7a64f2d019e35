"""Single-or-batch creates: one object, or a list of up to ``MAX_BATCH``, validated whole.

A batch with a bad item is refused whole, 400 with each bad item's index and fields, before
anything is written; what writes it is the domain's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from rest_framework import serializers

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
            single = self.single and one_by_its_fields
            raise serializers.ValidationError(errors.get(0, errors) if single else errors)
        return batch
