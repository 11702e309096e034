"""Holding seized secrets: mutable buffers wiped after use, and files overwritten before unlinking.

What this can and cannot guarantee in CPython is written down in docs/intake.md: the buffers
here are zeroed, but intermediate values (``bytes`` made by hashing, derivation and the secp256k1
bindings) are immutable objects the interpreter frees without wiping.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import SourceError

MAX_SOURCE_BYTES = 64 * 1024


class Secret:
    """A secret in a ``bytearray``; :meth:`wipe` zeroes it. Its repr never shows the content."""

    __slots__ = ("_buf",)

    def __init__(self, data: "bytes | bytearray") -> None:
        self._buf = bytearray(data)

    def __repr__(self) -> str:
        return f"Secret({len(self._buf)} bytes, {'wiped' if self.wiped else 'held'})"

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def wiped(self) -> bool:
        return not any(self._buf)

    def reveal(self) -> bytes:
        """A ``bytes`` copy for a library call that needs one (not wipeable: keep it short-lived)."""
        if self.wiped:
            raise SourceError("this secret was wiped already: read the source again")
        return bytes(self._buf)

    def buffer(self) -> bytearray:
        return self._buf

    def wipe(self) -> None:
        for i in range(len(self._buf)):
            self._buf[i] = 0


def read_secret_file(path: "str | os.PathLike[str]", *, limit: int = MAX_SOURCE_BYTES) -> Secret:
    """A source file's bytes (at most ``limit``) into a :class:`Secret`, read into a bytearray."""
    p = Path(path)
    buf = bytearray(limit + 1)
    try:
        with p.open("rb", buffering=0) as f:
            n = 0
            view = memoryview(buf)
            while n <= limit:
                got = f.readinto(view[n:])
                if not got:
                    break
                n += got
            view.release()
    except FileNotFoundError:
        raise SourceError(f"source file {p} does not exist", path=p) from None
    except IsADirectoryError:
        raise SourceError(f"{p} is a directory, not a source file", path=p) from None
    except OSError as e:
        raise SourceError(f"cannot read source file {p}: {e.strerror or type(e).__name__}", path=p) from None
    if n > limit:
        _zero(buf)
        raise SourceError(f"{p} is larger than {limit:,} bytes: a seized source file (keys, a mnemonic, "
                          "a descriptor) is much smaller; give only the secrets", path=p, limit=limit)
    secret = Secret(buf[:n])
    _zero(buf)
    return secret


def _zero(buf: bytearray) -> None:
    for i in range(len(buf)):
        buf[i] = 0


def wipe_file(path: "str | os.PathLike[str]", *, passes: int = 1) -> None:
    """Overwrite a file in place with zeros (``passes`` times, fsynced), then unlink it.

    On journalling or copy-on-write filesystems, SSDs (wear levelling) and backups, old blocks
    may survive: docs/intake.md says so. This is what an application can do.
    """
    p = Path(path)
    try:
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            raise SourceError(f"cannot wipe {p}: it is {'a link' if stat.S_ISLNK(st.st_mode) else 'not a plain file'}; "
                              "wiping would zero what it points to (or block on a FIFO): remove it and wipe the "
                              "source itself by hand", path=p)
        size = st.st_size
        fd = os.open(p, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            for _ in range(max(1, passes)):
                os.lseek(fd, 0, os.SEEK_SET)
                left = size
                block = b"\x00" * 65536
                while left > 0:
                    left -= os.write(fd, block[:min(left, len(block))])
                os.fsync(fd)
        finally:
            os.close(fd)
        p.unlink()
    except FileNotFoundError:
        raise SourceError(f"cannot wipe {p}: it does not exist", path=p) from None
    except OSError as e:
        raise SourceError(f"cannot wipe {p}: {e.strerror or type(e).__name__}; remove it by hand", path=p) from None
