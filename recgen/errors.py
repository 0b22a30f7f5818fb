"""Expected failures, each with the exit code the CLI returns (BSD sysexits, as cron wrappers expect).

| code | meaning |
|---:|---|
| 0 | success |
| 64 | usage: bad option or argument |
| 65 | bad data: a file is present but its content is wrong |
| 66 | missing input: a data folder, file or run does not exist |
| 69 | the database server or the Ray cluster is unavailable (cannot connect, or it broke mid-run) |
| 70 | internal error (a bug: please report it with the traceback) |
| 73 | cannot write output (database or model folder) |
| 75 | another recgen job holds the lock |
| 78 | bad configuration |
| 130/143 | interrupted by Ctrl-C / SIGTERM |
"""

EXIT_USAGE = 64
EXIT_DATA = 65
EXIT_NO_INPUT = 66
EXIT_UNAVAILABLE = 69
EXIT_INTERNAL = 70
EXIT_CANT_CREATE = 73
EXIT_LOCKED = 75
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class RecgenError(Exception):
    """An expected failure: the CLI prints its message on one line and exits with `exit_code`."""

    exit_code = EXIT_INTERNAL


class DataError(RecgenError):
    """A data file exists but cannot be used as it is (missing column, unparsable value, ...)."""

    exit_code = EXIT_DATA


class MissingInputError(RecgenError):
    """A data folder, file, model or run that was asked for does not exist."""

    exit_code = EXIT_NO_INPUT


class OutputError(RecgenError):
    """The database or the model folder cannot be written."""

    exit_code = EXIT_CANT_CREATE


class UnavailableError(RecgenError):
    """The database server or the Ray cluster cannot be reached, or broke mid-run."""

    exit_code = EXIT_UNAVAILABLE


class ConfigError(RecgenError):
    """An option or environment variable has a value recgen cannot use."""

    exit_code = EXIT_CONFIG


class LockedError(RecgenError):
    """Another recgen job holds the lock."""

    exit_code = EXIT_LOCKED


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, as expected failures are printed."""
    return " ".join(str(exc).split())
