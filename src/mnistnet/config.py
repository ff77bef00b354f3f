"""Typed params sections: ``params.yaml`` read into frozen dataclasses, checked before work.

Each stage owns one section of ``params.yaml`` and one frozen dataclass describing it (the
dataclasses live beside the code that uses them). ``load_section`` turns the YAML mapping into
that dataclass and rejects, with a ``ConfigError`` that names the key, the value and what is
allowed:

- a missing file, invalid YAML or a missing section;
- an unknown key (a typo such as ``train.lrr`` is an error, never silently ignored);
- a value of the wrong type (``epochs: 2.5``, ``hidden_size: "abc"``; booleans are not numbers);
- a value out of range or not among the choices, via each dataclass's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A value in ``params.yaml`` is missing, unknown, mistyped or out of range."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ``ConfigError`` for ``key`` unless ``ok``; used by ``__post_init__`` checks."""
    if not ok:
        raise ConfigError(f"{key}: got {value!r}; {allowed}")


def read_params(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``params.yaml`` (safe loader only) and return its top-level mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: params file not found. Run from the project root (where params.yaml "
            f"is), or give the path of your params file."
        ) from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}:{_yaml_problem(e)}. Fix the syntax and rerun.") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level.")
    return params


def _yaml_problem(e: yaml.YAMLError) -> str:
    """``LINE:COLUMN: invalid YAML, PROBLEM`` from PyYAML's error, without its own layout."""
    mark = getattr(e, "problem_mark", None)
    where = f"{mark.line + 1}:{mark.column + 1}:" if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    return f"{where} invalid YAML, {problem}" + (f" ({context})" if context else "")


def load_section(path: str | os.PathLike, section: str, cls: type[T]) -> T:
    """Return section ``section`` of the params file at ``path`` as a ``cls`` instance."""
    params = read_params(path)
    if section not in params:
        raise ConfigError(
            f"{path}: section {section!r} is missing. Add it (see the README for the keys)."
        )
    return from_mapping(cls, params[section], section)


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` is the dotted key path for messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"allowed keys are {', '.join(sorted(fields))}. Check the spelling."
        )
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], data[name], f"{where}.{name}") for name in data}
    try:
        return cls(**values)
    except ConfigError as e:
        raise ConfigError(f"{where}.{e}") from None
    except TypeError as e:  # a required key with no default is absent
        missing = [n for n, f in fields.items() if n not in data and _required(f)]
        raise ConfigError(
            f"{where}: missing required key(s) {', '.join(f'{where}.{m}' for m in missing)}."
        ) from e


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _convert(hint: Any, value: Any, key: str) -> Any:
    """Check ``value`` against type ``hint`` and return it in the dataclass's form."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{key}: got {value!r}; allowed values are {choices}.")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}.")
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}.")
        return value
    if hint is float:
        if isinstance(value, str) and _looks_numeric(value):
            raise ConfigError(
                f"{key}: got the text {value!r}; YAML reads exponents without a dot as text, "
                f"write it as {float(value)!r}."
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}.")
        return value
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a bug in a dataclass


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
