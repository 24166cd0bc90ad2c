"""Field types and base models shared by the request and response bodies."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""Lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64."""

VarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class Strict(BaseModel):
    """A request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Patch(Strict):
    """A partial update: absent fields stay; ``null`` is allowed only where it means "clear"."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Patch:
        for name in sorted(self.model_fields_set):
            if getattr(self, name) is None and name not in self.NULLABLE:
                raise ValueError(f"'{name}' cannot be null; leave it out to keep the current value")
        return self
