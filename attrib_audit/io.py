"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


LOCK = ".attrib-audit.lock"


class OutputDir:
    """An output folder held by one run: created if needed, locked while the run works.

    ``with OutputDir(path) as out:`` refuses a path that is a file or cannot be created, and a
    folder another live run holds (naming that run). On the way out the lock goes; after an
    error (not an interruption, which keeps what can be resumed) so do the files registered
    with :meth:`discard_on_error` and the folders this run created, if they are empty.
    """

    def __init__(self, path: str | Path, flag: str = "--out") -> None:
        self.path, self.flag = Path(path), flag
        self._created: list[Path] = []
        self._discard: list[Path] = []
        self._locked = False

    def __enter__(self) -> OutputDir:
        from attrib_audit.errors import AttribAuditError

        if self.path.exists() and not self.path.is_dir():
            raise AttribAuditError(f"{self.flag} {self.path} is a file; name a folder")
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            for p in reversed(missing):
                p.mkdir()
                self._created.append(p)
            self._lock()
        except OSError as exc:
            self._remove_created()
            raise AttribAuditError(
                f"cannot write to {self.flag} {self.path}: {exc.strerror or exc}; choose a "
                "writable folder"
            ) from None
        except BaseException:
            self._remove_created()
            raise
        return self

    def discard_on_error(self, path: Path) -> None:
        self._discard.append(path)

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None and not issubclass(kind, KeyboardInterrupt):
            for p in self._discard:
                p.unlink(missing_ok=True)
        if self._locked:
            (self.path / LOCK).unlink(missing_ok=True)
        self._remove_created()

    def _remove_created(self) -> None:
        for p in reversed(self._created):
            try:
                p.rmdir()  # only if empty
            except OSError:
                break
        self._created = []

    def _lock(self) -> None:
        import json
        import socket
        import time

        from attrib_audit.errors import BusyError

        lock = self.path / LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _holder(lock)
                if holder is None:  # a dead run's lock on this host: take it over
                    lock.unlink(missing_ok=True)
                    continue
                raise BusyError(
                    f"{self.flag} {self.path} is in use by process {holder.get('pid')} on "
                    f"{holder.get('host')} since {time.ctime(holder.get('since', 0))}; wait for "
                    f"it or choose another {self.flag} (if that run is gone, delete {lock})"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me))
            self._locked = True
            return
        raise BusyError(f"{self.flag} {self.path}: cannot take the lock {lock}; retry")


def _holder(lock: Path) -> dict | None:
    """Who holds ``lock``, or None when it is stale (its process is gone, on this host) or
    unreadable (a run that died while writing it)."""
    import json
    import socket

    try:
        holder = json.loads(lock.read_text())
        pid, host = int(holder["pid"]), str(holder["host"])
        holder["since"] = float(holder.get("since", 0))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return None
    if not 0 < pid < 2**31:  # no process has that id (0 and negatives name process groups)
        return None
    if host != socket.gethostname():
        return holder  # another machine's run on a shared folder: cannot check, so respect it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return holder
