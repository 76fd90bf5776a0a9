"""User-facing errors.

A :class:`BertpruneError` is a mistake in the user's input (config, data, model, folder). The CLI
prints its message alone, without a traceback, and exits with status 2; the message must say
what was wrong and how to fix it. Anything else that escapes is a bug and keeps its traceback.
"""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for messages
    that quote a library's error."""
    return str(e).splitlines()[0] if str(e).strip() else type(e).__name__


class BertpruneError(Exception):
    """Bad input: the message says what is wrong and how to fix it."""

    #: the CLI's exit status for this kind of error
    exit_code = 2


class DivergenceError(BertpruneError):
    """Training diverged (a non-finite or too-large loss or gradient): the run stopped and kept its
    last good checkpoint. The CLI exits with status 3, so a script can tell it from bad input."""

    exit_code = 3
