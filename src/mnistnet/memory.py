"""How much memory a plan needs, how much this machine has, and the check between them.

A params file can ask for a pool of a million copies or a network of a billion weights. The
stages that would allocate them (augment, train) and ``mnistnet check`` estimate the
memory first and refuse in one line, naming the keys to change, instead of ending minutes
later in a ``MemoryError`` or the kernel's out-of-memory killer.
"""

from __future__ import annotations

import os

from mnistnet.errors import ConfigError

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


def require(what: str, parts: dict[str, int], fix: str, have: int | None = None) -> None:
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
