"""Reading a nanotron YAML file into :mod:`ai_filters.nanotron.schema`'s dataclasses, strictly,
and writing one back to the plain dict nanotron reads.

``load_config`` reads a file as nanotron's ``dacite`` loading does (``strict=True``) and reports
every problem at once, in a ``NanotronConfigError``; the semantic rules are in
:mod:`ai_filters.nanotron.checks`.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from ai_filters.nanotron.schema import NanotronConfig


class NanotronConfigError(ValueError):
    """A nanotron config that nanotron would reject or run wrongly; ``problems`` lists each fix."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}"
        super().__init__(
            f"{count} in the nanotron config:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


def load_config(source: str | Path | Mapping[str, Any]) -> NanotronConfig:
    """Load a nanotron YAML file (or its parsed dict) into ``NanotronConfig``, strictly.

    Like nanotron's ``dacite`` loading with ``strict=True``: unknown keys, missing required keys
    and values of the wrong type are errors. All of them are reported at once, each named by its
    key path, in a ``NanotronConfigError``. No semantic checks: see ``validate``.
    """
    if isinstance(source, Mapping):
        data = source
    else:
        with open(source, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    problems: list[str] = []
    config = _convert(data, NanotronConfig, "", problems)
    if problems:
        raise NanotronConfigError(problems)
    return config


def config_to_dict(config: NanotronConfig) -> dict[str, Any]:
    """The plain dict that ``write_config`` dumps (and ``load_config`` reads back)."""
    return asdict(config)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _convert(value: Any, kind: Any, path: str, problems: list[str]) -> Any:
    """Check ``value`` against the annotation ``kind``; append a message per problem found."""
    origin = get_origin(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        return _convert_union(value, get_args(kind), path, problems)
    if origin is Literal:
        if value not in get_args(kind):
            choices = ", ".join(repr(choice) for choice in get_args(kind))
            problems.append(f"{path}: {value!r} is not allowed; use one of {choices}")
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return value
        (item,) = get_args(kind)
        return [_convert(v, item, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {value!r}")
            return value
        if not get_args(kind):
            return value
        item = get_args(kind)[1]
        return {k: _convert(v, item, _join(path, k), problems) for k, v in value.items()}
    if is_dataclass(kind):
        return _convert_dataclass(value, kind, path, problems)
    return _convert_scalar(value, kind, path, problems)


def _convert_union(value: Any, options: tuple, path: str, problems: list[str]) -> Any:
    if value is None and type(None) in options:
        return None
    candidates = [option for option in options if option is not type(None)]
    attempts = []
    for candidate in candidates:
        found: list[str] = []
        converted = _convert(value, candidate, path, found)
        if not found:
            return converted
        attempts.append((len(found), found, converted))
    _, found, converted = min(attempts, key=lambda attempt: attempt[0])
    problems.extend(found)
    return converted


def _convert_scalar(value: Any, kind: type, path: str, problems: list[str]) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    hint = ""
    if kind is float and isinstance(value, str) and _is_number(value):
        hint = " (YAML reads 4e-4 as text: write 4.0e-4)"
    problems.append(f"{path}: expected {kind.__name__}, got {value!r}{hint}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _accepts_none(kind: Any) -> bool:
    return get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind)


def _convert_dataclass(value: Any, cls: type, path: str, problems: list[str]) -> Any:
    where = path or "the config"
    if not isinstance(value, dict):
        problems.append(f"{where}: expected a mapping of {cls.__name__} fields, got {value!r}")
        return None
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in value:
        if key not in hints:
            problems.append(_unknown_key(_join(path, key), str(key), names))
    kwargs: dict[str, Any] = {}
    missing = False
    for spec in fields(cls):
        if spec.name in value:
            kwargs[spec.name] = _convert(
                value[spec.name], hints[spec.name], _join(path, spec.name), problems
            )
        elif spec.default is MISSING and spec.default_factory is MISSING:
            if _accepts_none(hints[spec.name]):
                kwargs[spec.name] = None
            else:
                problems.append(f"{_join(path, spec.name)} is required: add it to {where}")
                missing = True
    return None if missing else cls(**kwargs)


def _unknown_key(path: str, key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"{path} is not a field; did you mean {close[0]}?"
    return f"{path} is not a field; remove it (valid: {', '.join(names)})"
