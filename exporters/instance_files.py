"""Masking problems to instance files: one SMT-LIB/MPS/LP file, or a benchmark family with its index.

A family is written into a staging folder beside the target and moved into place at the end
(`staged_folder`), so an error, a full disk or Ctrl-C halfway leaves no partial family behind.
An input whose explanation would say nothing (no problem) gets a skipped row in instances.csv.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from smugir.errors import InputError
from smugir.exporters.files import check_target, staged_folder, write_text
from smugir.exporters.milp import write_milp
from smugir.exporters.smtlib import smtlib_text
from smugir.solve import DEFAULT_SOLVER, DEFAULT_TIMEOUT, OnProgress
from smugir.instance_status import (
    BOUND_CHOICES,
    Instance,
    Problem,
    decision_status,
    encoding_for,
    find_optimum,
    formula_size,
    instances_csv,
    resolve_bound,
)

FORMATS = ("smt2", "mps", "lp")


def export_problem(
    problem: Problem,
    path: str | os.PathLike,
    format: str = "smt2",
    objective: str = "bound",
    bound: str | int | None = None,
    logic: str = "QF_LIA",
    source: Mapping[str, Any] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    force: bool = False,
    solver: str = DEFAULT_SOLVER,
    on_progress: OnProgress | None = None,
) -> Instance:
    """Write one problem; for a decision problem the bound may be a number, 'opt' or 'opt-1'."""
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; accepted: {', '.join(FORMATS)}")
    path = check_target(path, force)
    if format != "smt2":
        if bound is not None or objective != "bound":
            raise InputError("--bound and --objective apply to SMT-LIB files; MPS and LP files hold the minimisation")
        if path.suffix.lower() != f".{format}":
            raise InputError(f"a {format.upper()} file must end in .{format}, got {path.name!r}")
        written = write_milp(problem, path, force)
        return Instance(path.name, str((source or {}).get("input", "")), "milp", format, None, "", written.columns, written.rows, 0.0)
    encoding = encoding_for(problem, logic)
    if objective == "omt":
        if bound is not None:
            raise InputError("--bound makes a decision problem; drop it for --objective omt")
        write_text(path, smtlib_text(encoding, "omt", source=source), force)
        return _instance(path, source, "omt", encoding, None, "", 0.0)
    if bound is None:
        raise InputError("a decision problem needs --bound B (a number, opt or opt-1)")
    if str(bound) not in BOUND_CHOICES:
        resolve_bound(bound, None)  # a bad number fails before HiGHS runs
    optimum = find_optimum(problem, timeout, solver, on_progress)
    value = resolve_bound(bound, optimum)
    status = decision_status(encoding, value, optimum)
    write_text(path, smtlib_text(encoding, "bound", value, status, source), force)
    return _instance(path, source, "decision", encoding, value, status or "unknown", optimum.seconds)


def export_family(
    items: Iterable[tuple[str, Problem | None, Mapping[str, Any]]],
    folder: str | os.PathLike,
    bounds: tuple[str, ...] = ("opt", "opt-1"),
    logic: str = "QF_LIA",
    timeout: float | None = DEFAULT_TIMEOUT,
    milp: bool = False,
    force: bool = False,
    solver: str = DEFAULT_SOLVER,
    min_seconds: float = 0.0,
    on_progress: OnProgress | None = None,
) -> list[Instance]:
    """For each (input id, problem, source): a decision file per bound, the OMT file, optionally MPS.
    A None problem is one whose explanation would say nothing: a skipped row, `source["skipped"]` says why.

    With `min_seconds` > 0 only the hard inputs are written: those whose optimum smugir proved and
    needed at least that many seconds for (a family of hard instances with proven statuses).
    Returns the rows of `instances.csv`, which is written last, beside the instance files.
    """
    if min_seconds < 0:
        raise InputError(f"min_seconds must be >= 0, got {min_seconds}")
    rows: list[Instance] = []
    with staged_folder(folder, ["instances.csv"], force) as staging:
        for name, problem, source in items:
            if problem is None:  # nothing to minimise: source says why
                rows.append(Instance("", name, "none", "", None, f"skipped: {source.get('skipped', 'no problem')}", 0, 0, 0.0))
                continue
            optimum = find_optimum(problem, timeout, solver, on_progress)
            if min_seconds > 0 and not (optimum.proven and optimum.seconds >= min_seconds):
                continue
            encoding = encoding_for(problem, logic)
            for spec in bounds:
                try:
                    value = resolve_bound(spec, optimum)
                except InputError as exc:
                    rows.append(Instance("", name, "decision", str(encoding.logic), None, f"skipped: {exc}", 0, 0, optimum.seconds))
                    continue
                status = decision_status(encoding, value, optimum)
                path = staging / f"{name}_b{value}.smt2"
                write_text(path, smtlib_text(encoding, "bound", value, status, source), force=True)
                rows.append(_instance(path, source, "decision", encoding, value, status or "unknown", optimum.seconds))
            path = staging / f"{name}_omt.smt2"
            write_text(path, smtlib_text(encoding, "omt", source=source), force=True)
            expected = str(optimum.value) if optimum.proven else "unknown"
            rows.append(_instance(path, source, "omt", encoding, None, expected, optimum.seconds))
            if milp:
                written = write_milp(problem, staging / f"{name}.mps")
                rows.append(Instance(written.path.name, str(source.get("input", name)), "milp", "mps", None, expected,
                                     written.columns, written.rows, round(optimum.seconds, 4)))
        write_text(staging / "instances.csv", instances_csv(rows), force=True)
    return rows


def _instance(path: Path, source, kind: str, encoding, bound: int | None, expected: str, seconds: float) -> Instance:
    variables, constraints = formula_size(encoding)
    return Instance(path.name, str((source or {}).get("input", "")), kind, str(encoding.logic), bound, expected, variables, constraints, round(seconds, 4))
