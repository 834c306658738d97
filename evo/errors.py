"""The one exception type that reaches the user as a message instead of a traceback."""


class UsageError(Exception):
    """Bad input the user can fix: the message names the problem and the fix, on one line.

    The CLI prints it as `evo: error: <message>` and exits with status 2.
    """
