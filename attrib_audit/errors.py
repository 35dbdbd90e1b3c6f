"""The library's own exception types; the CLI maps them to exit codes."""

from __future__ import annotations


class AttribAuditError(Exception):
    """Bad input or usage: one line that names what is wrong and what to do (exit code 2)."""


class RegistryError(AttribAuditError):
    """An unknown name, or a name claimed twice."""
