"""Pinned floating-point numerics, so a clone on any x86-64 machine trains the same bytes.

Three choices in NumPy depend on the machine, and each changes the order in which floats are
added, hence the last bits of every result:

1. OpenBLAS (the matrix products) picks a kernel when it loads — ``Haswell`` on AVX2 CPUs,
   ``SkylakeX`` on AVX-512 ones;
2. it splits each product across its threads, by default one per core;
3. NumPy's own loops (``exp``, ``log``, sums) dispatch to AVX-512 code where the CPU has it.

``pin()`` fixes all three before NumPy loads: the ``Haswell`` kernel (every x86-64 CPU with
AVX2 and FMA runs it), one BLAS thread, and NumPy's AVX2 loops. Every entry point
(the stage scripts, the ``mnistnet`` command) calls it first; ``apply()`` then
sets the thread count at run time too and checks that what runs is what was asked for.

Opt out with ``MNISTNET_NUMERICS=native``: the CPU's own kernel and every core (or whatever
the environment's ``OPENBLAS_*`` variables say). Results then differ from the committed ones
in the last bits. This module must not import NumPy.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from mnistnet.pipeline.errors import NumericsError

KERNEL = "Haswell"  # OpenBLAS kernel: AVX2 + FMA, runs on every x86-64 CPU since 2013
# One BLAS thread: OpenBLAS splits each product between its threads statically, so on a busy
# machine every product waits for its slowest half (4x slower under load with 2, measured in
# bench/bench_train.py --busy). Parallelism comes from processes: DVC's queue, test workers.
THREADS = 1
# NumPy's AVX-512 dispatch targets (names of NumPy 2.4; unknown names are ignored)
NUMPY_AVX512 = ("X86_V4", "AVX512_ICL", "AVX512_SPR")
# CPU flags (as /proc/cpuinfo names them) that NumPy's X86_V3 target and the kernel need
REQUIRED_FLAGS = ("avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm")
OPT_OUT = "MNISTNET_NUMERICS"  # "native" opts out; "pinned" (or unset) is the default

# Read by OpenBLAS or NumPy in place of the pin's own settings: removed, and said so
_DROPPED = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "NPY_ENABLE_CPU_FEATURES")


@dataclass
class State:
    mode: str = "unset"  # "pinned", "native", "unpinnable" or "late" (NumPy loaded first)
    notes: list[str] = field(default_factory=list)  # lines for the user, printed by stages


STATE = State()


def pin(environ: MutableMapping[str, str] = os.environ) -> State:
    """Set the pinned environment for OpenBLAS and NumPy, unless NumPy is already loaded.

    A second call in a process pinned before NumPy loaded (a test running a stage in
    process) keeps that pin."""
    if STATE.mode != "unset":
        return STATE
    choice = environ.get(OPT_OUT, "pinned")
    if choice not in ("pinned", "native"):
        STATE.mode = "native"
        STATE.notes.append(
            f"numerics: {OPT_OUT}={choice!r} is not 'pinned' or 'native'; running native. "
            f"Unset it to reproduce the committed results."
        )
        return STATE
    if choice == "native":
        STATE.mode = "native"
        STATE.notes.append(
            "numerics: native (MNISTNET_NUMERICS=native): results will differ in the last "
            "bits from the committed ones"
        )
        return STATE
    if "numpy" in sys.modules:
        STATE.mode = "late"
        return STATE
    missing = _missing_cpu_support()
    if missing:
        STATE.mode = "unpinnable"
        STATE.notes.append(
            f"numerics: this CPU cannot run the pinned {KERNEL} kernel ({missing}); running "
            f"native, so results will differ in the last bits from the committed ones"
        )
        return STATE
    wanted = {
        "OPENBLAS_CORETYPE": KERNEL,
        "OPENBLAS_NUM_THREADS": str(THREADS),
        "NPY_DISABLE_CPU_FEATURES": " ".join(NUMPY_AVX512),
    }
    overridden = [
        f"{name}={environ[name]}"
        for name in (*wanted, *_DROPPED)
        if name in environ and environ[name] != wanted.get(name)
    ]
    for name in _DROPPED:
        environ.pop(name, None)
    environ.update(wanted)
    STATE.mode = "pinned"
    if overridden:
        STATE.notes.append(
            f"numerics: pinned to OpenBLAS {KERNEL}, {THREADS} BLAS thread, NumPy's AVX2 loops "
            f"(ignoring {', '.join(overridden)}); {OPT_OUT}=native opts out"
        )
    return STATE


def _missing_cpu_support() -> str:
    """Why the pinned kernel cannot run here, or "" when it can."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return f"{platform.machine()} is not x86-64"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return "CPU flags unreadable: no /proc/cpuinfo"
    missing = [flag for flag in REQUIRED_FLAGS if flag not in flags.split()]
    return f"no {', '.join(missing)}" if missing else ""


def apply() -> list[str]:
    """After NumPy loads: enforce the thread count and check the pin; return lines to print.

    Raises ``NumericsError`` when the pin was set but something else runs, since the outputs
    would silently stop matching the committed ones.
    """
    if STATE.mode in ("native", "unpinnable"):
        return STATE.notes
    if STATE.mode == "late":
        return [
            "numerics: NumPy was loaded before numerics.pin() ran, so the OpenBLAS kernel and "
            "NumPy's loops could not be pinned; results may differ in the last bits"
        ]
    import threadpoolctl

    threadpoolctl.threadpool_limits(THREADS, user_api="blas")
    running = describe()
    if running != pinned_description():
        raise NumericsError(
            f"numerics: pinned {pinned_description()}, but this process runs {running}. "
            f"Set {OPT_OUT}=native to run anyway, with results that differ in the last bits."
        )
    return STATE.notes


def describe() -> str:
    """What runs now, e.g. ``openblas Haswell, 1 thread, NumPy without AVX-512 loops``."""
    import numpy as np
    import threadpoolctl

    blas = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    library = ", ".join(f"{b['internal_api']} {b.get('architecture')}" for b in blas) or "no BLAS"
    threads = {b["num_threads"] for b in blas}
    found = np.show_config(mode="dicts")["SIMD Extensions"]["found"]  # enabled targets
    avx512 = any(name in found for name in NUMPY_AVX512)
    loops = "with AVX-512 loops" if avx512 else "without AVX-512 loops"
    count = "/".join(map(str, sorted(threads)))
    return f"{library}, {count} thread{'' if threads == {1} else 's'}, NumPy {loops}"


def pinned_description() -> str:
    threads = f"{THREADS} thread{'' if THREADS == 1 else 's'}"
    return f"openblas {KERNEL}, {threads}, NumPy without AVX-512 loops"
