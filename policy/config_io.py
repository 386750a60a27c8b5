"""Strict construction of config dataclasses from plain dicts (YAML, hydra)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict[str, Any], what: str) -> T:
    """Build `cls` from `data`, naming unknown keys instead of ignoring a typo."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known keys are {sorted(known)}")
    required = [
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.default is MISSING and f.default_factory is MISSING and f.init
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"missing {what} keys {missing}; known keys are {sorted(known)}")
    return cls(**data)


def documented(
    default: Any,
    doc: str,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with its meaning and range attached (`FIELD_DOC` metadata): what
    `--help`, `ros2 param describe` and generated parameters show, from one place."""
    return field(default=default, metadata={FIELD_DOC: FieldDoc(doc, low, high, choices)})


FIELD_DOC = "df_stack_doc"


@dataclass(frozen=True)
class FieldDoc:
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None


def field_doc(item: Any) -> FieldDoc:
    """The FieldDoc of a dataclass field (an empty one where none was given)."""
    return item.metadata.get(FIELD_DOC) or FieldDoc("")
