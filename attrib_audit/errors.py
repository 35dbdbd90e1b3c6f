"""The library's own exception types; the CLI maps them to exit codes.

Only these mean "bad input" (exit code 2). Any other exception is a bug (exit code 3), even a
``ValueError``: the library raises :class:`AttribAuditError` for everything a user can get wrong.
"""

from __future__ import annotations


class AttribAuditError(ValueError):
    """Bad input or usage: one line that names what is wrong and what to do (exit code 2).

    A ``ValueError`` subclass, so callers of the Python API that catch ``ValueError`` keep
    working; the CLI catches this class only. ``refs`` names the options the message mentions
    as ``{name}``: the message shows the option's name (``baseline``), the CLI its flag
    (``--baseline``).
    """

    def __init__(self, message: str = "", *, refs: tuple[str, ...] = ()) -> None:
        self.template, self.refs = message, tuple(refs)
        super().__init__(self.render(lambda name: name))

    def render(self, name_of) -> str:
        """The message with each ``{ref}`` named by ``name_of(ref)``."""
        text = self.template
        for ref in self.refs:  # not str.format: the rest may hold braces (a path)
            text = text.replace("{" + ref + "}", name_of(ref))
        return text


class RegistryError(AttribAuditError):
    """An unknown name, or a name claimed twice."""


class UntrustedCodeError(AttribAuditError):
    """Something that travels with a checkpoint would run code, and the user has not said
    they trust it (``--trust-checkpoint``)."""


class BusyError(AttribAuditError):
    """An output folder is in use by another run."""


class SettingError(AttribAuditError):
    """A setting with a bad value. ``field`` names it as the library knows it (``steps``,
    ``method_params.ig.steps``); the CLI turns it into the flag that sets it (``--steps``,
    ``--method-param ig.steps``). ``is_flag``: ``field`` already is a flag."""

    def __init__(
        self, field: str, detail: str, *, is_flag: bool = False, refs: tuple[str, ...] = ()
    ) -> None:
        self.field, self.is_flag = field, is_flag
        super().__init__(detail, refs=refs)
        self.detail = self.render(lambda name: name)
        self.args = (f"{field} {self.detail}",)
