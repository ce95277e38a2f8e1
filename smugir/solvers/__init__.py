"""Solver backends, one module each behind one interface (base.py: `Backend`, `Solution`,
`SolveProgress`), named in registry.py; `smugir.solve.solve` is the public entry point."""
