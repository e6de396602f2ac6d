"""The one exception type that means "the user can fix this"."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: shown as one line, no traceback, non-zero exit.

    The message says what is wrong and how to fix it. Plugins raise it for bad
    option values, missing settings or tools, failed logins and similar.
    """
