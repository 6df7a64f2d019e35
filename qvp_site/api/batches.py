"""Single-or-batch creates: one object, or a list of up to ``MAX_BATCH``, validated whole.

A batch with a bad item is refused whole, 400 with each bad item's index and fields, before
anything is written; what writes it is the domain's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
        serializer_class: type[serializers.Serializer],
        context: Callable[[list[Any]], dict] | None = None,
        *,
        one_by_its_fields: bool = False,
    ) -> serializers.ListSerializer:
        """The items validated by ``serializer_class(many=True)`` (with ``context`` made from
        the items, e.g. their records looked up at once), or a 400 naming each bad item's
        index. ``one_by_its_fields``: an object posted alone is refused by its fields alone,
        as it is answered alone (no index)."""
        batch = serializer_class(
            data=self.items,
            many=True,
            allow_empty=False,
            max_length=MAX_BATCH,
            context=context(self.items) if context else {},
        )
        if not batch.is_valid():
            errors = batch.errors
            if isinstance(errors, list):
                errors = {index: error for index, error in enumerate(errors) if error}
            single = self.single and one_by_its_fields
            raise serializers.ValidationError(errors.get(0, errors) if single else errors)
        return batch
