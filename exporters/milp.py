"""Masking problems as MPS or LP files, written by HiGHS itself.

The file holds the same 0-1 program `smug explain --solver highs` solves, strict inequalities
included as `>= b + margin` on rows scaled to unit size (see smugir.encoders.milp).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from smugir.encoders.milp import MilpModel
from smugir.errors import InputError, OutputError
from smugir.exporters.files import check_target, file_mode, output_error
from smugir.problem import MaskProblem, NetworkMaskProblem

FORMATS = ("mps", "lp")
_LAST_LINE = {"mps": b"ENDATA", "lp": b"end"}  # HiGHS does not report a failed write (a full disk): check the end


@dataclass(frozen=True)
class MilpFile:
    path: Path
    columns: int  # mask bits, plus hidden neurons and their phases for whole networks
    rows: int


def write_milp(problem: MaskProblem | NetworkMaskProblem, path: str | os.PathLike, force: bool = False) -> MilpFile:
    """Write the model; the format follows the suffix (.mps or .lp). All or nothing."""
    path = check_target(path, force)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise InputError(f"MILP files end in .mps or .lp, got {path.name!r}")
    model = MilpModel(problem)
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".{suffix}")
        os.close(handle)
        status = model.highs.writeModel(temporary)
        if str(status).endswith("kError") or not _complete(Path(temporary), suffix):
            raise OutputError(f"HiGHS could not write {str(path)!r} (a full disk?); nothing was written")
        os.chmod(temporary, file_mode())
        os.replace(temporary, path)
    except OSError as exc:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise output_error(exc, path) from None
    except BaseException:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise
    return MilpFile(path, model.highs.getNumCol(), model.highs.getNumRow())


def _complete(path: Path, suffix: str) -> bool:
    with open(path, "rb") as stream:
        stream.seek(max(0, path.stat().st_size - 64))
        lines = stream.read().split()
    return bool(lines) and lines[-1].lower() == _LAST_LINE[suffix].lower()
