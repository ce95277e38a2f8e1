"""The names `smug export` accepts, in a module the argument parser can import without pySMT (which
imports z3): `smug inspect` and every command that encodes nothing load no solver library."""

FORMATS = ("smt2", "opb", "wcnf", "mps", "lp")
OBJECTIVES = ("bound", "omt")
LOGICS = {"QF_LIA": "scaled", "QF_LRA": "exact"}  # SMT-LIB logic -> numeric mode of the encoding
