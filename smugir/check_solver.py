"""`smug check-solver FAMILY -- COMMAND {}`: run someone's solver on an exported family and grade it.

Every file of one format whose answer smugir proved (instances.csv) is given to COMMAND, with `{}`
replaced by the file's absolute path as one argument (no shell), in parallel (`--jobs`) and with a
time limit per file; the output is read by `smugir.solver_answers` and judged against the proven
answer. The family folder is untrusted: only plain file names listed in its instances.csv and
lying in it are run, and the command runs in a fresh empty folder (PYTHONSAFEPATH set), so that
neither the current folder nor the family can put modules on a Python child's path.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from smugir.errors import InputError, printable
from smugir.safefiles import open_regular
from smugir.solver_answers import KINDS, Answer, judge, read_answer

OUTCOMES = ("correct", "wrong", "unknown", "timeout")
OUTPUT_LIMIT = 16 << 20  # bytes of a solver's output that are read (a model or v-line fits easily)
MAX_INDEX = 64 << 20  # bytes of instances.csv


@dataclass(frozen=True)
class Case:
    file: str
    kind: str
    expected: str  # sat | unsat | an integer optimum


@dataclass(frozen=True)
class Verdict:
    case: Case
    outcome: str  # one of OUTCOMES
    answer: Answer
    seconds: float
    note: str = ""  # the last stderr line or the exit code when there was no answer


def read_cases(folder: str | os.PathLike, format: str | None) -> tuple[list[Case], int, str]:
    """(the proven cases of one format, how many files of it have no proven answer, the format)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{printable(repr(str(folder)))} is not a folder (an exported family)")
    with open_regular(folder / "instances.csv", "the family index", InputError) as stream:
        text = stream.read(MAX_INDEX + 1)
    if len(text) > MAX_INDEX:
        raise InputError("the family's instances.csv is larger than 64 MiB")
    rows = list(csv.DictReader(io.StringIO(text.decode("utf-8", errors="replace"))))
    if rows and not {"file", "kind", "expected"} <= set(rows[0]):
        raise InputError("instances.csv has no file, kind and expected columns: not a smugir family")
    present = [f for f, kind in KINDS.items() if any(r["kind"] == kind and r["file"] for r in rows)]
    if format is None:
        graded = [f for f in present if f != "omt"]
        if len(graded) != 1:
            raise InputError(f"the family holds {', '.join(present) or 'no solver files'}: choose one with --format {{{','.join(KINDS)}}}")
        format = graded[0]
    if format not in present:
        raise InputError(f"the family has no {format} files (it has {', '.join(present) or 'none'})")
    cases, unproven = [], 0
    for row in rows:
        if row["kind"] != KINDS[format] or not row["file"]:
            continue
        name = row["file"]
        if name != os.path.basename(name) or name.startswith(".") or not (folder / name).is_file():
            raise InputError(f"instances.csv names {printable(repr(name))}, which is not a file of the family folder")
        if row["expected"] in ("sat", "unsat") or row["expected"].lstrip("-").isdigit():
            cases.append(Case(name, row["kind"], row["expected"]))
        else:
            unproven += 1
    return cases, unproven, format


def command_for(command: Sequence[str], path: Path) -> list[str]:
    return [str(path) if part == "{}" else part for part in command]


def run_case(command: Sequence[str], folder: Path, case: Case, timeout: float, workdir: str) -> Verdict:
    """One solver run, its process group killed at the time limit; output read from temporary files."""
    environment = {**os.environ, "PYTHONSAFEPATH": "1"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        clock = time.perf_counter()
        try:
            process = subprocess.Popen(command_for(command, (folder / case.file).resolve()), stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err, cwd=workdir, env=environment, start_new_session=True)
        except OSError as exc:
            raise InputError(f"cannot run {printable(repr(command[0]))}: {exc.strerror or exc}") from None
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _kill_group(process)
        seconds = time.perf_counter() - clock
        out.seek(0)
        err.seek(0)
        output = out.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")
        errors = err.read(OUTPUT_LIMIT).decode("utf-8", errors="replace").strip().splitlines()
    answer = read_answer(case.kind, output)
    if code is None and answer.claim == "unknown":
        return Verdict(case, "timeout", answer, seconds)
    outcome = judge(case.expected, answer)
    note = "" if outcome != "unknown" else printable(errors[-1][:200]) if errors else f"exit code {code}"
    return Verdict(case, outcome, answer, seconds, note)


def _kill_group(process: subprocess.Popen) -> None:
    """End the solver and anything it started (its own session), also when it already exited."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def check_family(folder: str | os.PathLike, command: Sequence[str], cases: list[Case], timeout: float, jobs: int = 1,
                 on_verdict: Callable[[Verdict], None] | None = None) -> list[Verdict]:
    """Every case through the command, `jobs` at a time; verdicts in the family's order."""
    if "{}" not in command:
        raise InputError("COMMAND must contain {} where the instance file goes, e.g. -- z3 {}")
    folder = Path(folder)
    verdicts: dict[str, Verdict] = {}
    with tempfile.TemporaryDirectory(prefix="smug-check-") as workdir, ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(run_case, command, folder, case, timeout, workdir) for case in cases]
        try:
            for future in as_completed(futures):
                verdict = future.result()
                verdicts[verdict.case.file] = verdict
                if on_verdict is not None:
                    on_verdict(verdict)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return [verdicts[case.file] for case in cases]


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    command = split_command(args)
    if not (0 < args.timeout <= 1e7):
        raise InputError(f"--timeout must be a number of seconds in (0, 1e7], got {args.timeout}")
    if args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    cases, unproven, format = read_cases(args.family, args.format)
    console = Console(highlight=False)
    columns = (TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"), TimeRemainingColumn(),
               TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("checking", total=len(cases), last="")

        def advance(verdict: Verdict) -> None:
            progress.update(task, advance=1, last=f"last {verdict.case.file}: {verdict.outcome}")

        verdicts = check_family(args.family, command, cases, args.timeout, args.jobs, advance)
    console.print(f"{printable(' '.join(command))} on {len(cases)} {format} files of {printable(args.family)}:")
    table = Table()
    for name, justify in (("outcome", "left"), ("files", "right"), ("seconds", "right"), ("slowest", "right")):
        table.add_column(name, justify=justify)
    counts = Counter(v.outcome for v in verdicts)
    for outcome in OUTCOMES:
        times = [v.seconds for v in verdicts if v.outcome == outcome]
        table.add_row(outcome, str(counts[outcome]), f"{sum(times):.2f}", f"{max(times):.2f}" if times else "-")
    console.print(table)
    if unproven:
        console.print(f"{unproven} {format} files have no proven answer (unknown in instances.csv) and were not run")
    for verdict in verdicts:
        if verdict.outcome == "wrong":
            console.print(f"WRONG {printable(verdict.case.file)}: expected {verdict.case.expected}, the solver said {verdict.answer.text()}")
    return 1 if counts["wrong"] else 0


class _Options(argparse.ArgumentParser):
    """The options, also when written after FAMILY (argparse hands everything after it to COMMAND)."""

    def error(self, message: str):
        raise InputError(f"{message} (see smug check-solver --help)")


def _options() -> argparse.ArgumentParser:
    options = _Options(add_help=False, prog="smug check-solver")
    options.add_argument("--format", choices=tuple(KINDS), help="which files to run: smt2 (decisions), omt, opb or wcnf "
                         "(default: the family's only one of smt2, opb, wcnf)")
    options.add_argument("--timeout", type=float, default=60.0, help="seconds per file (default 60); the solver is killed then")
    options.add_argument("--jobs", type=int, default=1, help="files run at the same time (default 1)")
    return options


def split_command(args: argparse.Namespace) -> list[str]:
    """COMMAND after `--`; options between FAMILY and `--` are parsed into `args`."""
    words = list(args.solver_command)
    command = words  # options before FAMILY: argparse already dropped the `--`
    if "--" in words:
        cut = words.index("--")
        _options().parse_args(words[:cut], namespace=args)
        command = words[cut + 1:]
    if not command or command[0].startswith("-"):
        raise InputError("no solver command: add -- COMMAND {} (e.g. -- z3 {})")
    if "{}" not in command:
        raise InputError("COMMAND must contain {} where the instance file goes, e.g. -- z3 {}")
    return command


def add_command(commands) -> None:
    check = commands.add_parser(
        "check-solver",
        parents=[_options()],
        help="run a solver command on every file of an exported family and grade its answers",
        description="Run COMMAND on every file of one format of FAMILY (made by smug export-benchmarks), {} standing "
        "for the file, and compare its answers (SMT-LIB sat/unsat, OMT objectives, or the PB/MaxSAT competition "
        "lines s OPTIMUM FOUND / o N / s UNSATISFIABLE) with the proven ones in FAMILY/instances.csv.",
        epilog="exit codes: 0 no wrong answer; 1 some wrong answer (each one named); 2 bad usage or family (one line)",
    )
    check.add_argument("family", help="the family folder (with instances.csv)")
    check.add_argument("solver_command", nargs=argparse.REMAINDER, metavar="-- COMMAND {}",
                       help="the solver command line, {} replaced by the file path (one argument, no shell)")
    check.set_defaults(run=_run)
