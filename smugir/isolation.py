"""Nothing in the current directory runs: child interpreters start without it on sys.path, and
z3's library is loaded only from z3's own package.

Python puts the current directory first on sys.path for `python -m` and `python -c`, which is how
the CP-SAT process, spawn workers and multiprocessing's resource tracker start, so a `pickle.py`
there would run in them. PYTHONSAFEPATH=1 (Python >= 3.11, hence smugir's floor) keeps it off and
keeps the rest of the environment (PYTHONPATH included). z3's binding looks for
`libz3.so` in `.` before its package unless `builtins.Z3_LIB_DIRS` says where to look.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

def pin_z3_library() -> None:
    """Make z3 (imported later, by pySMT or by us) load libz3 from its package, never from `.`."""
    if hasattr(builtins, "Z3_LIB_DIRS"):
        return  # the user chose
    try:
        spec = importlib.util.find_spec("z3")  # finds the package without importing it
    except (ImportError, ValueError):
        return
    if spec is None or not spec.submodule_search_locations:
        return
    folders = [str(Path(p, "lib")) for p in spec.submodule_search_locations] + list(spec.submodule_search_locations)
    builtins.Z3_LIB_DIRS = folders


def child_environment() -> dict[str, str]:
    """The environment for a child interpreter: this one's, with the current directory off sys.path."""
    return {**os.environ, "PYTHONSAFEPATH": "1"}


def python_module_command(module: str) -> list[str]:
    """`python -m module` for a child that must not import anything from the current directory
    (with `child_environment()`)."""
    return [sys.executable, "-m", module]


@contextmanager
def safe_spawning() -> Iterator[None]:
    """While it lasts, processes multiprocessing starts (spawn workers, the resource tracker) do not
    put the current directory on sys.path: they inherit os.environ, and take no other option."""
    if os.environ.get("PYTHONSAFEPATH"):
        yield
        return
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        os.environ.pop("PYTHONSAFEPATH", None)
