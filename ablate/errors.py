"""One exception type for bad user input: the CLI prints its message on one line and exits 2."""


class AblateError(Exception):
    """A user-facing error. The message names the offending field or file."""
