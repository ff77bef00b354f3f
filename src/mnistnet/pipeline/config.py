"""Params sections as typed, frozen models: one definition each, validated before work.

Each stage owns one section of ``params.yaml`` and one ``Section`` subclass describing it
(they live beside the code that uses them: ``TrainConfig`` in ``nn/config.py``, …). A field's
type, default, bounds and description are written once, in its ``Field``; from that one
definition come the validation here, the JSON Schema editors use, and the table of keys in
docs/parameters.md (``apps/params.py``).

``read_params`` parses YAML as DVC does (ruamel.yaml, YAML 1.2), so a stage trains on the
numbers that ``dvc params diff`` and ``dvc exp show`` display: ``epochs: 030`` is 30 for
both, ``seed: 1:30`` is text for both (and refused). It refuses, in one line naming the
place: a missing or oversized file, one that is not UTF-8, invalid YAML, a key given twice,
aliases (a 2 KB "billion laughs" file expands to gigabytes), nesting deeper than any params
file needs. ``load_section`` then reports every problem of a section at once, one line each:
the dotted key, pydantic's message, and the value given (shortened by ``shown``).
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.composer import Composer
from ruamel.yaml.events import AliasEvent

from mnistnet.pipeline.errors import ConfigError

T = TypeVar("T", bound="Section")
HEX64 = r"^[0-9a-f]{64}$"  # a sha256 digest as hex
MAX_BYTES = 2**20  # a params file is a few KB; this bounds what an error can quote
MAX_DEPTH = 16  # params.yaml nests three levels; deeper is a mistake or an attack
_SHOWN = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = 60
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = 4
_SHOWN.maxlevel = 2


def shown(value: Any) -> str:
    """``repr(value)``, shortened to about 60 characters, with ``...`` where cut."""
    return _SHOWN.repr(value)


class _StrictComposer(Composer):
    """ruamel's composer without aliases, and with a nesting limit."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            raise YAMLError(
                f"line {event.start_mark.line + 1}: an alias (*{event.anchor}): "
                f"aliases are not read here; write the value out"
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.parser.peek_event().start_mark
                raise YAMLError(f"line {mark.line + 1}: nested over {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class Section(BaseModel):
    """A params section: frozen, unknown keys refused, no silent coercion (strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def read_params(path: str | os.PathLike, what: str = "params file") -> dict[str, Any]:
    """Read ``params.yaml`` (or another YAML file of this project's, ``what``) as DVC reads
    it, strictly, and return its top-level mapping."""
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
    yaml = YAML(typ="safe", pure=True)  # DVC's parser; pure: the composer above applies
    yaml.Composer = _StrictComposer
    try:
        params = yaml.load(text)
    except YAMLError as e:  # ruamel's message, with its place, on one line
        mark = getattr(e, "problem_mark", None)
        place = f"{mark.line + 1}:{mark.column + 1}:" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ConfigError(
            f"{path}:{place} invalid YAML, {problem[:200]}. Fix it and rerun."
        ) from None
    except ValueError:  # Python refuses to read an integer of over 4,300 digits
        raise ConfigError(f"{path}: a number of over 4,300 digits; write a real value.") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level.")
    return params


def load_section(path: str | os.PathLike, section: str, cls: type[T]) -> T:
    """Return section ``section`` of the params file at ``path`` as a ``cls`` instance."""
    params = read_params(path)
    if section not in params:
        raise ConfigError(
            f"{path}: section {section!r} is missing. Add it (docs/parameters.md lists the keys)."
        )
    return from_mapping(cls, params[section], section)


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build ``cls`` from ``data``; ``where`` is the section's name, for messages."""
    try:
        return cls.model_validate({} if data is None else data)
    except ValidationError as e:
        raise ConfigError("\n".join(problems(e, cls, where))) from None


def problems(error: ValidationError, cls: type[Section], where: str) -> list[str]:
    """One line per problem: the dotted key, pydantic's message and the value given."""
    lines, errors = [], error.errors(include_url=False)
    for err in errors:
        key = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        key = key.lstrip(".") or "the file"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(cls.model_fields)
            lines.append(
                f"{key}: unknown key; allowed keys here are {allowed}. Check the spelling."
            )
        elif err["type"] == "too_short" and any(
            len(e["loc"]) > len(err["loc"]) and e["loc"][: len(err["loc"])] == err["loc"]
            for e in errors
        ):
            continue  # a list whose items were refused, each in a line of its own
        elif err["type"] == "missing":
            lines.append(f"{key}: {err['msg']}.")
        else:
            lines.append(f"{key}: {err['msg']} (got {shown(err['input'])}).")
    return lines


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
