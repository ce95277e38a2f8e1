"""The memory budget: what a step will allocate is estimated and checked before it allocates.

A declared shape, an archive header or an option can ask for more memory than the machine has;
numpy would then raise deep inside a computation, or the system's OOM killer would end the
process. Every large allocation smugir makes is estimated first (`require`), from what is known
before reading the data, and refused with one line naming what asked for it, its size and the limit.

The limit is `--max-memory SIZE` on every command (`SMUG_MAX_MEMORY` in the environment, so
worker processes inherit it); by default half of the memory available when the process starts
(MemAvailable in /proc/meminfo, and no more than a cgroup's limit minus its usage), or half of
the physical memory where that is unknown. An estimate covers the arrays of one step, not the
~0.3 GB the Python process and its libraries take.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

from smugir.errors import BudgetError

ENVIRONMENT = "SMUG_MAX_MEMORY"
DEFAULT_FRACTION = 0.5
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from `8G`, `500M`, `64k`, `1.5GiB` or a plain number of bytes (binary units)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"expected a size such as 8G, 500M or 1048576, got {text!r}")
    value = int(float(match[1]) * _UNITS[match[2].lower()])
    if value < 1:
        raise ValueError(f"a memory limit must be at least 1 byte, got {text!r}")
    return value


def format_size(nbytes: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def _meminfo(field: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """What a cgroup (v2, or v1) still lets this process take, when it sets a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file, encoding="ascii") as stream:
                limit = stream.read().strip()
            with open(usage_file, encoding="ascii") as stream:
                usage = int(stream.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < (1 << 60):
            return max(int(limit) - usage, 0)
    return None


@lru_cache(maxsize=1)
def default_limit() -> int:
    """Half of the memory available now (see the module docstring)."""
    available = _meminfo("MemAvailable")
    if available is None:
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            available = 4 << 30
    room = _cgroup_room()
    if room is not None:
        available = min(available, room)
    return max(int(DEFAULT_FRACTION * available), 64 << 20)


_configured: int | None = None


def limit() -> int:
    """The memory limit in bytes: `--max-memory`, else $SMUG_MAX_MEMORY, else the default."""
    if _configured is not None:
        return _configured
    text = os.environ.get(ENVIRONMENT)
    if text:
        try:
            return parse_size(text)
        except ValueError:
            pass
    return default_limit()


@contextmanager
def limited(nbytes: int | None) -> Iterator[None]:
    """Run with this limit (None: keep the current one); spawned workers inherit it."""
    global _configured
    if nbytes is None:
        yield
        return
    saved, saved_env = _configured, os.environ.get(ENVIRONMENT)
    _configured = int(nbytes)
    os.environ[ENVIRONMENT] = str(int(nbytes))
    try:
        yield
    finally:
        _configured = saved
        if saved_env is None:
            os.environ.pop(ENVIRONMENT, None)
        else:
            os.environ[ENVIRONMENT] = saved_env


def require(what: str, nbytes: float) -> None:
    """Refuse (BudgetError, one line) when `what` would need more than the limit."""
    cap = limit()
    if nbytes > cap:
        raise BudgetError(
            f"{what} needs {format_size(nbytes)}, over the memory limit of {format_size(cap)} "
            "(--max-memory SIZE to change it)"
        )


def elements(shape) -> int:
    """The number of elements of a shape, as a Python int (no overflow for hostile dims)."""
    count = 1
    for dim in shape:
        count *= max(int(dim), 0)
    return count
