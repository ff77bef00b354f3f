"""Params sections as typed, frozen models: one definition each, validated before work.

Each stage owns one section of ``params.yaml`` and one ``Section`` subclass describing it
(they live beside the code that uses them: ``TrainConfig`` in ``train``, …). A field's type,
default, bounds and description are written once, in its ``Field``; from that one definition
come the validation here, the JSON Schema editors use, and the README's table
(``mnistnet.apps.params``). ``load_section`` reads a section and rejects, with a ``ConfigError``
holding one line per problem (every problem at once), each naming the dotted key, the value
and what is allowed:

- a missing, unreadable or oversized file, one that is not UTF-8, invalid YAML, YAML
  aliases (a 2 KB "billion laughs" file expands to gigabytes), a key given twice (DVC
  refuses such a file; PyYAML would keep the last), nesting deeper than any params file
  needs, or a missing section;
- an unknown key (a typo such as ``train.lrr`` is an error, never silently ignored);
- a value of the wrong type (``epochs: 2.5``, ``hidden_size: "abc"``; booleans are not
  numbers, and YAML's ``1e-3``, which it reads as text, gets its own hint);
- a value out of range or not among the choices.

Every value quoted in a message is shortened (``shown``), so a 50 MB string is one short line.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any, TypeVar

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mnistnet.pipeline.errors import ConfigError

T = TypeVar("T", bound="Section")
HEX64 = r"^[0-9a-f]{64}$"  # a sha256 digest as hex
PATTERN_WORDS = {HEX64: "expected 64 lowercase hex digits"}
MAX_BYTES = 2**20  # a params file is a few KB; this bounds what an error can quote
MAX_DEPTH = 16  # params.yaml nests three levels; deeper is a mistake or an attack
_SHOWN = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = 60
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = 4
_SHOWN.maxlevel = 2


def shown(value: Any) -> str:
    """``repr(value)``, shortened to about 60 characters, with ``...`` where cut."""
    return _SHOWN.repr(value)


class _Refused(yaml.YAMLError):
    """What the strict loader refuses, with the place it found it."""

    def __init__(self, mark: yaml.Mark, problem: str) -> None:
        super().__init__(problem)
        self.problem_mark, self.problem = mark, problem


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and duplicate keys, and with a nesting limit."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                event.start_mark,
                f"an alias (*{event.anchor}): aliases are not read here; write the value out",
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(self.peek_event().start_mark, f"nested over {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                line = first.setdefault(key, key_node.start_mark.line)
            except TypeError:
                continue  # an unhashable key: PyYAML's own error says so below
            if line != key_node.start_mark.line:
                raise _Refused(
                    key_node.start_mark,
                    f"the key {shown(key)} again (first on line {line + 1}): keep one; "
                    f"DVC refuses a file with a key twice",
                )
        return super().construct_mapping(node, deep)


class Section(BaseModel):
    """A params section: frozen, unknown keys refused, no silent coercion (strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def read_params(path: str | os.PathLike, what: str = "params file") -> dict[str, Any]:
    """Read ``params.yaml`` (or another YAML file of this project's, ``what``) with the strict
    loader and return its top-level mapping."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: {what} not found. Run from the project root (where params.yaml is), "
            f"or give the path of your {what}."
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e}).") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{path}: over {MAX_BYTES:,} bytes; a {what} is a few KB. Check it is the right file."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: byte 0x{data[e.start]:02x} is not UTF-8. Save the file as UTF-8."
        ) from None
    try:
        params = yaml.load(text, Loader=StrictLoader)  # noqa: S506  a SafeLoader, stricter
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}:{_yaml_problem(e)}. Fix it and rerun.") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level.")
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
    """Build ``cls`` from ``data``; ``where`` is the section's name, for messages."""
    try:
        return cls.model_validate({} if data is None else data)
    except ValidationError as e:
        raise ConfigError("\n".join(problems(e, cls, where))) from None


def problems(error: ValidationError, cls: type[Section], where: str) -> list[str]:
    """One line per problem in ``error``: the dotted key, the value and what is allowed."""
    lines, unknown = [], []
    errors = error.errors()
    for err in errors:
        key = _dotted(where, err["loc"])
        kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
        if kind == "extra_forbidden":
            unknown.append(key)
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            lines.append(f"{key}: expected a mapping of keys, got {shown(value)}.")
        elif kind == "missing":
            lines.append(f"{key}: missing; add this required key.")
        elif kind in ("int_type", "int_from_float", "int_parsing"):
            lines.append(f"{key}: expected a whole number, got {shown(value)}.")
        elif kind == "float_type" and isinstance(value, str) and _looks_numeric(value):
            lines.append(
                f"{key}: got the text {shown(value)}; YAML reads exponents without a dot as "
                f"text, write it as {float(value)!r}."
            )
        elif kind in ("float_type", "float_parsing"):
            lines.append(f"{key}: expected a number, got {shown(value)}.")
        elif kind == "finite_number":
            lines.append(f"{key}: got {shown(value)}; expected a finite number.")
        elif kind in ("string_type", "bool_type", "tuple_type", "list_type"):
            expected = {"string_type": "text", "bool_type": "true or false"}.get(kind, "a list")
            lines.append(f"{key}: expected {expected}, got {shown(value)}.")
        elif kind == "literal_error":
            lines.append(f"{key}: got {shown(value)}; allowed values are {ctx['expected']}.")
        elif kind == "string_pattern_mismatch":
            words = PATTERN_WORDS.get(ctx["pattern"], f"text matching {ctx['pattern']}")
            lines.append(f"{key}: got {shown(value)}; {words}.")
        elif kind == "too_short" and any(
            len(e["loc"]) > len(err["loc"]) and e["loc"][: len(err["loc"])] == err["loc"]
            for e in errors
        ):
            continue  # its items were refused, each with its own line
        elif kind == "too_short":
            lines.append(
                f"{key}: got {shown(value)}; expected at least {ctx['min_length']} item(s)."
            )
        elif kind == "value_error":
            lines.append(f"{key}: {ctx['error']}")
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            field = _field(cls, err["loc"])
            number = float(value) if field and field.annotation is float else value
            lines.append(f"{key}: got {shown(number)}; expected {bounds(field, key)}")
        else:  # a kind this table does not know yet: pydantic's own words
            lines.append(f"{key}: got {shown(value)}; {err['msg']}.")
    if unknown:
        allowed = ", ".join(sorted(cls.model_fields))
        named = ", ".join(key if len(key) <= 60 else shown(key) for key in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        lines.insert(
            0,
            f"{where or 'the file'}: unknown key(s) {named}{more}; allowed keys are {allowed}. "
            f"Check the spelling.",
        )
    return lines


def bounds(field, key: str = "value") -> str:
    """A field's range in words: ``1 or more``, ``a number > 0``, ``0 <= momentum < 1``."""
    lo = hi = None
    for c in getattr(field, "metadata", []):
        if isinstance(c, annotated_types.Ge | annotated_types.Gt):
            lo = (
                ">=" if isinstance(c, annotated_types.Ge) else ">",
                c.ge if hasattr(c, "ge") else c.gt,
            )
        if isinstance(c, annotated_types.Le | annotated_types.Lt):
            hi = (
                "<=" if isinstance(c, annotated_types.Le) else "<",
                c.le if hasattr(c, "le") else c.lt,
            )
    name = key.rsplit(".", 1)[-1]
    if lo and hi:
        return f"{lo[1]} {'<=' if lo[0] == '>=' else '<'} {name} {hi[0]} {hi[1]}"
    if lo:
        return f"{lo[1]} or more" if lo[0] == ">=" else f"a number > {lo[1]}"
    if hi:
        return f"at most {hi[1]}" if hi[0] == "<=" else f"less than {hi[1]}"
    return "a valid value"


def _field(cls: type[Section], loc: tuple):
    """The pydantic field at ``loc`` (nested models and list indexes followed), or None."""
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(cls, "model_fields", {})
        if part not in fields:
            return None
        field = fields[part]
        inner = field.annotation
        args = getattr(inner, "__args__", ())
        cls = next(
            (a for a in (inner, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
    return field


def _dotted(where: str, loc: tuple) -> str:
    key = where
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# Whether a plan fits: a params file can ask for a pool of a million copies or a network of a
# billion weights. The stages that would allocate them (augment, train) and `mnistnet check`
# estimate the memory first and refuse in one line, naming the keys to change.

BASELINE = 200 * 2**20  # the interpreter, NumPy and the stage's own code, bytes


def available_bytes() -> int | None:
    """Memory this process can still get: MemAvailable on Linux, else the physical total,
    or None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def size(nbytes: float) -> str:
    """``3.1 GB``, ``512 MB``: decimal units, as people read them."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 1e3:.0f} kB"


def require_memory(what: str, parts: dict[str, int], fix: str, have: int | None = None) -> None:
    """Raise ``ConfigError`` if ``parts`` (bytes by name) and the baseline exceed what this
    machine has; ``what`` says what needs it, ``fix`` which keys to change."""
    have = available_bytes() if have is None else have
    need = BASELINE + sum(parts.values())
    if have is None or need <= have:
        return
    biggest = sorted(parts.items(), key=lambda part: part[1], reverse=True)[:3]
    detail = ", ".join(f"{name} {size(nbytes)}" for name, nbytes in biggest)
    raise ConfigError(
        f"{what} need about {size(need)} ({detail}); this machine has {size(have)} available. {fix}"
    )
