"""Masking problems to instance files: one SMT-LIB/OPB/WCNF/MPS/LP file, or a benchmark family with its index.

A family is written into a staging folder beside the target and moved into place at the end
(`staged_folder`), so an error, a full disk or Ctrl-C halfway leaves no partial family behind.
An input whose explanation would say nothing (no problem) gets a skipped row in instances.csv.
Every file's expected answer is proven for that file (smugir.instance_status for SMT-LIB,
smugir.exporters.pb_status for the integer roundings of OPB, WCNF and QF_BV), or written as unknown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from smugir.errors import InputError
from smugir.exporters.bv import bv_text
from smugir.exporters.choices import FORMATS
from smugir.exporters.family_readme import family_readme
from smugir.exporters.files import check_target, staged_folder, write_text
from smugir.exporters.milp import write_milp
from smugir.exporters.opb import ROUNDINGS, integer_model, write_opb
from smugir.exporters.pb_status import file_optimum
from smugir.exporters.smtlib import LICENSE, smtlib_text
from smugir.exporters.wcnf import write_wcnf
from smugir.solve import DEFAULT_SOLVER, DEFAULT_TIMEOUT, OnProgress
from smugir.instance_status import (
    BOUND_CHOICES,
    Instance,
    Optimum,
    Problem,
    decision_status,
    encoding_for,
    find_optimum,
    formula_size,
    instances_csv,
    resolve_bound,
)

PB_WRITERS = {"opb": write_opb, "wcnf": write_wcnf}


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
    rounding: str = "relaxed",
) -> Instance:
    """Write one problem; for a decision problem the bound may be a number, 'opt' or 'opt-1'.
    A decision file proven sat ends with `(get-model)`; OPB and WCNF files hold `rounding`'s rows."""
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; accepted: {', '.join(FORMATS)}")
    path = check_target(path, force)
    if format != "smt2":
        if bound is not None or objective != "bound":
            raise InputError(f"--bound and --objective apply to SMT-LIB files; {format.upper()} files hold the minimisation")
        if path.suffix.lower() != f".{format}":
            raise InputError(f"a {format.upper()} file must end in .{format}, got {path.name!r}")
        if format in PB_WRITERS:
            integer_model(problem, rounding)  # refuse a network problem or real weights before solving
            optimum = find_optimum(problem, timeout, solver, on_progress)
            return _pb_file(problem, path, format, rounding, optimum, source, timeout, force)
        written = write_milp(problem, path, force)
        return Instance(path.name, _input(source), "milp", format, None, "", written.columns, written.rows, 0.0)
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
    write_text(path, smtlib_text(encoding, "bound", value, status, source, get_model=status == "sat"), force)
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
    formats: tuple[str, ...] = ("smt2",),
    roundings: tuple[str, ...] = ROUNDINGS,
    origin: Mapping[str, Any] | None = None,
    license: str = LICENSE,
) -> list[Instance]:
    """For each (input id, problem, source): with smt2 a decision file per bound and the OMT file;
    with opb/wcnf a file per rounding; with mps (or `milp`) the MPS file. A None problem is one whose
    explanation would say nothing: a skipped row, `source["skipped"]` says why.

    With `min_seconds` > 0 only the hard inputs are written: those whose optimum smugir proved and
    needed at least that many seconds for (a family of hard instances with proven statuses).
    Returns the rows of `instances.csv`, which is written last, beside the instance files and the
    family's README.md (`origin`: what the family was made from, for that README).
    """
    if min_seconds < 0:
        raise InputError(f"min_seconds must be >= 0, got {min_seconds}")
    unknown = [f for f in formats if (f not in FORMATS or f == "lp") and f != "smt2-bv"]
    if unknown or not formats:
        raise InputError(f"unknown family format {', '.join(unknown) or 'none'}; accepted: smt2, smt2-bv, opb, wcnf, mps")
    for rounding in roundings:
        if rounding not in ROUNDINGS:
            raise InputError(f"unknown rounding {rounding!r}; accepted: {', '.join(ROUNDINGS)}")
    milp = milp or "mps" in formats
    rows: list[Instance] = []
    with staged_folder(folder, ["instances.csv", "README.md"], force) as staging:
        for name, problem, source in items:
            if problem is None:  # nothing to minimise: source says why
                rows.append(Instance("", name, "none", "", None, f"skipped: {source.get('skipped', 'no problem')}", 0, 0, 0.0))
                continue
            optimum = find_optimum(problem, timeout, solver, on_progress)
            if min_seconds > 0 and not (optimum.proven and optimum.seconds >= min_seconds):
                continue
            if "smt2" in formats:
                rows += _smtlib_files(problem, name, staging, bounds, logic, optimum, source, license)
            if "smt2-bv" in formats:
                for rounding in roundings:
                    rows += _bv_files(problem, name, staging, rounding, optimum, source, timeout, license)
            for format in (f for f in formats if f in PB_WRITERS):
                for rounding in roundings:
                    rows.append(_pb_file(problem, staging / f"{name}_{rounding}.{format}", format, rounding, optimum, source, timeout, True))
            if milp:
                expected = str(optimum.value) if optimum.proven else "unknown"
                written = write_milp(problem, staging / f"{name}.mps")
                rows.append(Instance(written.path.name, _input(source, name), "milp", "mps", None, expected,
                                     written.columns, written.rows, round(optimum.seconds, 4)))
        write_text(staging / "instances.csv", instances_csv(rows), force=True)
        write_text(staging / "README.md", family_readme(rows, origin or {}, solver), force=True)
    return rows


def _smtlib_files(problem: Problem, name: str, staging: Path, bounds: tuple[str, ...], logic: str, optimum: Optimum,
                  source: Mapping[str, Any], license: str) -> list[Instance]:
    """A decision file per bound (competition form: no set-option, no get-model) and the OMT file."""
    encoding = encoding_for(problem, logic)
    rows = []
    for spec in bounds:
        try:
            value = resolve_bound(spec, optimum)
        except InputError as exc:
            rows.append(Instance("", _input(source, name), "decision", str(encoding.logic), None, f"skipped: {exc}", 0, 0, optimum.seconds))
            continue
        status = decision_status(encoding, value, optimum)
        path = staging / f"{name}_b{value}.smt2"
        write_text(path, smtlib_text(encoding, "bound", value, status, source, license=license), force=True)
        rows.append(_instance(path, source, "decision", encoding, value, status or "unknown", optimum.seconds))
    path = staging / f"{name}_omt.smt2"
    write_text(path, smtlib_text(encoding, "omt", source=source, license=license), force=True)
    expected = str(optimum.value) if optimum.proven else "unknown"
    rows.append(_instance(path, source, "omt", encoding, None, expected, optimum.seconds))
    return rows


def _pb_file(problem, path: Path, format: str, rounding: str, optimum: Optimum, source, timeout, force: bool) -> Instance:
    """One OPB or WCNF file and its row: the optimum proven for the file's own rounding."""
    expected = file_optimum(problem, integer_model(problem, rounding), optimum, timeout)
    written = PB_WRITERS[format](problem, path, rounding, source, force)
    return Instance(written.path.name, _input(source), format, "", None, expected, written.variables,
                    written.constraints, round(optimum.seconds, 4), rounding)


def _bv_files(problem, name: str, staging: Path, rounding: str, optimum: Optimum, source, timeout, license: str) -> list[Instance]:
    """QF_BV decision files of one rounding's rows (smugir.exporters.bv): at the file's proven
    optimum V (sat) and V - 1 (unsat); for rows with no solution, one file at the total weight (unsat)."""
    model = integer_model(problem, rounding)
    expected = file_optimum(problem, model, optimum, timeout)
    if expected == "unknown":
        return [Instance("", _input(source, name), "decision", "QF_BV", None, "skipped: the rounding's optimum is unproven", 0, 0, optimum.seconds, rounding)]
    cases = [(int(model.weights.sum()), "unsat")] if expected == "unsat" else [(int(expected), "sat"), (int(expected) - 1, "unsat")]
    rows = []
    for bound, status in (c for c in cases if c[0] >= 0):
        path = staging / f"{name}_{rounding}_bv_b{bound}.smt2"
        write_text(path, bv_text(model, bound, status, source, license), force=True)
        rows.append(Instance(path.name, _input(source), "decision", "QF_BV", bound, status, int(model.weights.size),
                             int(model.right.size) + 1, round(optimum.seconds, 4), rounding))
    return rows


def _input(source: Mapping[str, Any] | None, default: str = "") -> str:
    return str((source or {}).get("input", default))


def _instance(path: Path, source, kind: str, encoding, bound: int | None, expected: str, seconds: float) -> Instance:
    variables, constraints = formula_size(encoding)
    return Instance(path.name, _input(source), kind, str(encoding.logic), bound, expected, variables, constraints, round(seconds, 4))
