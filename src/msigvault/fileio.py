"""Atomic file writes (temp file in the same directory, fsync, rename: nothing half-written) and
bounded reads (a file that grows, a FIFO or a device is never read whole)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Type

from .errors import MsigvaultError


class FileExists(MsigvaultError):
    """An output file already exists and overwriting was not requested."""

    code = "file.exists"


def write_atomic(path: "str | os.PathLike", data: bytes, *, secret: bool = False,
                 overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    ``secret=True`` creates the file with mode 0600. ``overwrite=False`` refuses to replace an
    existing file (raises :class:`FileExists`).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not overwrite and path.exists():
        raise FileExists(f"{path} already exists: choose another name or remove it first", path=path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        if secret:
            os.fchmod(fd, 0o600)
        else:
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not overwrite:
            # link() fails if the target appeared meanwhile; rename() would replace it silently
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExists(f"{path} already exists: choose another name or remove it first", path=path)
            except OSError:
                # filesystems without hard links (FAT/exFAT USB sticks): check, then rename
                if path.exists():
                    raise FileExists(f"{path} already exists: choose another name or remove it first", path=path)
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def read_bounded(path: "str | os.PathLike", limit: int, error: "Type[MsigvaultError]", what: str) -> bytes:
    """The bytes of ``path``, at most ``limit``: read up to ``limit`` + 1 bytes, so a file that
    grows, a FIFO or a device is refused unread, not read whole. Every failure is ``error`` (a
    MsigvaultError class) naming ``what`` the file should be: missing, a directory, unreadable,
    too large (with ``path`` and, when too large, ``limit``)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{what} {p} does not exist", path=p) from None
    except IsADirectoryError:
        raise error(f"{p} is a directory, not a {what}", path=p) from None
    except OSError as e:
        raise error(f"cannot read {what} {p}: {e.strerror or e}", path=p) from None
    if len(data) > limit:
        raise error(f"{what} {p} is larger than {limit:,} bytes: refused unread", path=p, limit=limit)
    return data
