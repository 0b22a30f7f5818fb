"""`python -m recgen` is the `recgen` command."""

from recgen.cli import cli

cli(prog_name="recgen")
