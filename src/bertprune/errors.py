"""User-facing errors.

A :class:`BertpruneError` is a mistake in the user's input (config, data, model, folder). The CLI
prints its message alone, without a traceback, and exits with status 2; the message must say
what was wrong and how to fix it. Anything else that escapes is a bug and keeps its traceback.
"""


class BertpruneError(Exception):
    """Bad input: the message says what is wrong and how to fix it."""
