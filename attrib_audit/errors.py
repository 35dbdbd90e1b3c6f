"""The library's own exception types; the CLI maps them to exit codes.

Only these mean "bad input" (exit code 2). Any other exception is a bug (exit code 3), even a
``ValueError``: the library raises :class:`AttribAuditError` for everything a user can get wrong.
"""

from __future__ import annotations


class AttribAuditError(ValueError):
    """Bad input or usage: one line that names what is wrong and what to do (exit code 2).

    A ``ValueError`` subclass, so callers of the Python API that catch ``ValueError`` keep
    working; the CLI catches this class only.
    """


class RegistryError(AttribAuditError):
    """An unknown name, or a name claimed twice."""


class UntrustedCodeError(AttribAuditError):
    """Something that travels with a checkpoint would run code, and the user has not said
    they trust it (``--trust-checkpoint``)."""


class BusyError(AttribAuditError):
    """An output folder is in use by another run."""
