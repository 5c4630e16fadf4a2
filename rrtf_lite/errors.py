"""One exception type for mistakes a user can fix: the CLI prints its message as one line, no traceback."""


class UserError(Exception):
    """A problem with the user's input or setup; the message says what is wrong and how to fix it."""
