"""The one exception type that means "the user asked for something we cannot do"."""


class UsageError(ValueError):
    """Bad input from the command line or a file the user pointed at.

    `run.py` prints the message as a single line and exits with status 2, so the message must
    name the flag and say what is allowed.
    """
