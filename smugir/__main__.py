"""`python -m smugir` is the `smug` command."""

from smugir.cli import main

raise SystemExit(main())
