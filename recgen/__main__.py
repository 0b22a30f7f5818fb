"""`python -m recgen` is the `recgen` command."""

from recgen.cli import main

main()
