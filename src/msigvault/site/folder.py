"""The shared folder: envelopes between a coordinator and sites that allow no HTTP (docs/site.md).

    FOLDER/sites/<site identity id>/requests/<session>.msve   coordinator -> site: the newest sealed request
    FOLDER/sites/<site identity id>/requests/<session>.json   its context (vault, name, memo): advisory
    FOLDER/sites/<site identity id>/outbox/<session>-<sequence>.msve   site -> coordinator
    FOLDER/sites/<site identity id>/processed/<same name>[.result.json]  claimed by the coordinator's folder-sync

Everything in the folder is untrusted: an envelope is authenticated when it is opened, and its
context file only names what the laptop's signer checks anyway. Every directory below FOLDER is
opened step by step without following a link, and every file operation (list, read, write,
rename, delete) is made relative to that directory's descriptor, so a link planted in the folder
can never point the coordinator's writes and deletions elsewhere on its machine. Files are written
atomically (a temporary ``.NAME.*.tmp`` first, which nobody reads) and read with size limits,
only if they are plain files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from ..fileio import FileExists
from ..identity.envelope import MAX_ENVELOPE
from .errors import FolderError

__all__ = ["SiteFolder", "OUTBOX_NAME", "REQUEST_NAME", "MAX_CONTEXT", "read_limited"]

#: an outgoing envelope: ``<session>-<sequence>.msve``
OUTBOX_NAME = re.compile(r"^([A-Za-z0-9._:-]{1,64})-([0-9]{1,20})\.msve$")
#: a request: ``<session>.msve`` and ``<session>.json``
REQUEST_NAME = re.compile(r"^([A-Za-z0-9._:-]{1,64})\.(msve|json)$")
MAX_CONTEXT = 64 * 1024
MAX_FILES = 10_000  # files looked at per directory and sync
_SITE_ID = re.compile(r"^[0-9a-f]{32}$")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
_FILE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC


def _read_fd(opener: "Any", shown: Path, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the plain file ``opener()`` opens (O_NOFOLLOW, O_NONBLOCK: a link or a
    FIFO planted in its place is refused, never followed or waited on)."""
    try:
        fd = opener()
    except FileNotFoundError:
        raise FolderError(f"{shown} does not exist", path=shown) from None
    except OSError as e:
        raise FolderError(f"{shown} is not a plain file: refused ({e.strerror or e})", path=shown) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FolderError(f"{shown} is not a plain file: refused", path=shown)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise FolderError(f"cannot read {shown}: {e.strerror or e}", path=shown) from None
    finally:
        os.close(fd)
    if size > limit:
        raise FolderError(f"{shown} is larger than {limit:,} bytes: refused unread", path=shown, limit=limit)
    return b"".join(chunks)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def read_limited(path: Path, limit: int) -> bytes:
    """A file's bytes; FolderError (before reading it all) if it is larger than ``limit`` or not a plain file
    (a link, a directory, a FIFO: refused without following or waiting)."""
    path = Path(path)
    return _read_fd(lambda: os.open(path, _FILE), path, limit)


@dataclass(frozen=True)
class SiteFolder:
    """One site's directories in the shared folder ``root`` (the site named by its identity id, 32 hex)."""

    root: Path
    site_id: str

    @classmethod
    def at(cls, root: "str | os.PathLike[str]", site_id: str, *, create: bool = False) -> "SiteFolder":
        base = Path(root)
        if not base.is_dir():
            raise FolderError(f"the shared folder {base} does not exist or is not a directory: mount it, or give "
                              "the right --folder", path=base)
        if not _SITE_ID.match(site_id):
            raise FolderError("a site's directory is named by its identity id (32 lower-case hex digits)")
        folder = cls(base, site_id)
        if create:
            for name in ("requests", "outbox", "processed"):
                with folder._dir(name, create=True):
                    pass
        return folder

    @property
    def base(self) -> Path:
        return self.root / "sites" / self.site_id

    @property
    def requests(self) -> Path:
        return self.base / "requests"

    @property
    def outbox(self) -> Path:
        return self.base / "outbox"

    @property
    def processed(self) -> Path:
        return self.base / "processed"

    # -- directories and files, relative to descriptors ----------------------------------------

    @contextlib.contextmanager
    def _dir(self, name: str, *, create: bool = False) -> "Iterator[Optional[int]]":
        """A descriptor of ``sites/<id>/<name>``, every step below the root opened without following a link;
        None if it does not exist (and ``create`` is false). FolderError if a step is a link or not a directory."""
        try:
            fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        except OSError as e:
            raise FolderError(f"cannot open the shared folder {self.root}: {e.strerror or e}", path=self.root) from None
        shown = self.root
        try:
            for part in ("sites", self.site_id, name):
                shown = shown / part
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    except OSError as e:
                        raise FolderError(f"cannot create {shown}: {e.strerror or e}", path=shown) from None
                try:
                    child = os.open(part, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if create:
                        raise FolderError(f"{shown} vanished while it was being created: run again",
                                          path=shown) from None
                    os.close(fd)
                    fd = -1
                    break
                except OSError:
                    raise FolderError(f"{shown} is a link or not a directory: refused (nothing in the shared folder "
                                      "may point elsewhere); remove it and run again", path=shown) from None
                os.close(fd)
                fd = child
            yield fd if fd >= 0 else None
        finally:
            if fd >= 0:
                os.close(fd)

    def _names(self, name: str) -> "list[str]":
        with self._dir(name) as fd:
            if fd is None:
                return []
            try:
                entries = sorted(os.listdir(fd))[:MAX_FILES]
            except OSError as e:
                raise FolderError(f"cannot list {self.base / name}: {e.strerror or e}", path=self.base / name) from None
        return [n for n in entries if not n.startswith(".")]

    def _read(self, directory: str, name: str, limit: int) -> bytes:
        with self._dir(directory) as fd:
            shown = self.base / directory / name
            if fd is None:
                raise FolderError(f"{shown} does not exist", path=shown)
            return _read_fd(lambda: os.open(name, _FILE, dir_fd=fd), shown, limit)

    def _write(self, directory: str, name: str, data: bytes, *, overwrite: bool = True) -> Path:
        """Write ``directory/name`` atomically inside the directory's descriptor (a temporary file, fsync,
        rename; ``overwrite=False`` refuses an existing name)."""
        shown = self.base / directory / name
        with self._dir(directory, create=True) as fd:
            assert fd is not None
            tmp = f".{name}.{os.urandom(6).hex()}.tmp"
            try:
                out = os.open(tmp, _NEW, 0o644, dir_fd=fd)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(out, view):]
                    os.fsync(out)
                finally:
                    os.close(out)
                if overwrite:
                    os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
                else:
                    try:  # link() fails if the name appeared meanwhile; rename() would replace it silently
                        os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
                    except FileExistsError:
                        raise FileExists(f"{shown} already exists: choose another name or remove it first",
                                         path=shown) from None
                    except OSError:  # no hard links (a FAT/exFAT USB stick): check, then rename
                        if _exists(name, fd):
                            raise FileExists(f"{shown} already exists: choose another name or remove it first",
                                             path=shown) from None
                        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
                    else:
                        os.unlink(tmp, dir_fd=fd)
                with contextlib.suppress(OSError):
                    os.fsync(fd)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
                raise FolderError(f"cannot write {shown}: {e.strerror or e}", path=shown) from None
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
                raise
        return shown

    # -- the coordinator's side ---------------------------------------------------------------

    def write_request(self, session: str, envelope: bytes, context: "dict[str, Any]") -> None:
        """The newest sealed request of ``session`` and its context (the envelope last: a reader that finds
        it finds its context)."""
        self._write("requests", f"{session}.json", json.dumps(context, separators=(",", ":")).encode() + b"\n")
        self._write("requests", f"{session}.msve", envelope)

    def remove_requests_except(self, sessions: "set[str]") -> "list[str]":
        """Delete the request files of sessions no longer pending; their session ids. Only entries of the
        requests directory itself are deleted (a link is removed, never followed)."""
        gone = set()
        names = self._names("requests")
        with self._dir("requests") as fd:
            if fd is None:
                return []
            for name in names:
                m = REQUEST_NAME.match(name)
                if m and m.group(1) not in sessions:
                    try:
                        os.unlink(name, dir_fd=fd)
                    except FileNotFoundError:
                        pass
                    except OSError as e:
                        raise FolderError(f"cannot remove {self.requests / name}: {e.strerror or e}",
                                          path=self.requests / name) from None
                    gone.add(m.group(1))
        return sorted(gone)

    def outgoing(self) -> "list[tuple[Path, str, int]]":
        """(path, session, sequence) of the site's envelopes waiting in its outbox, oldest sequence first."""
        found = []
        for name in self._names("outbox"):
            m = OUTBOX_NAME.match(name)
            if m:
                found.append((self.outbox / name, m.group(1), int(m.group(2))))
        return sorted(found, key=lambda t: (t[2], t[1]))

    def claim(self, path: Path) -> "Path | None":
        """Take an envelope out of the outbox before reading it (one atomic rename into processed/): None if
        another folder-sync took it first, so two syncs never both submit one file."""
        name = Path(path).name
        with self._dir("outbox") as src, self._dir("processed", create=True) as dst:
            if src is None:
                return None
            assert dst is not None  # created
            target = name
            if _exists(target, dst):
                target = f"{name}.again-{os.getpid()}-{os.urandom(4).hex()}"
            try:
                os.rename(name, target, src_dir_fd=src, dst_dir_fd=dst)
            except FileNotFoundError:
                return None
            except OSError as e:
                raise FolderError(f"cannot move {path} into {self.processed}: {e.strerror or e}", path=path) from None
        return self.processed / target

    def read_claimed(self, claimed: Path, limit: int = MAX_ENVELOPE) -> bytes:
        """The bytes of an envelope :meth:`claim` moved into processed/ (a plain file only, at most ``limit``)."""
        return self._read("processed", Path(claimed).name, limit)

    def record_result(self, claimed: Path, result: "dict[str, Any]") -> Path:
        """What became of a claimed envelope, beside it: ``NAME.result.json``."""
        return self._write("processed", f"{Path(claimed).name}.result.json",
                           json.dumps(result, separators=(",", ":")).encode() + b"\n")

    # -- the site's side ----------------------------------------------------------------------

    def incoming(self) -> "Iterator[tuple[str, bytes, dict[str, Any]]]":
        """(session, envelope, context) of every request the coordinator left for this site."""
        for name in self._names("requests"):
            m = REQUEST_NAME.match(name)
            if not m or m.group(2) != "msve":
                continue
            session = m.group(1)
            envelope = self._read("requests", name, MAX_ENVELOPE)
            context_path = self.requests / f"{session}.json"
            try:
                context = json.loads(self._read("requests", f"{session}.json", MAX_CONTEXT))
            except (ValueError, UnicodeDecodeError, FolderError):
                context = None
            if not isinstance(context, dict):
                raise FolderError(f"{context_path} is missing or not a JSON object: run the coordinator's "
                                  "folder-sync again", path=context_path)
            yield session, envelope, context

    def post(self, session: str, sequence: int, envelope: bytes) -> Path:
        """Leave an envelope in the outbox for the coordinator's next folder-sync."""
        return self._write("outbox", f"{session}-{sequence}.msve", envelope, overwrite=False)

    def results(self) -> "list[dict[str, Any]]":
        """What the coordinator's folder-sync made of this site's envelopes (its result files)."""
        out = []
        for name in self._names("processed"):
            if name.endswith(".result.json"):
                try:
                    obj = json.loads(self._read("processed", name, MAX_CONTEXT))
                except (ValueError, UnicodeDecodeError, FolderError):
                    continue
                if isinstance(obj, dict):
                    out.append({"file": name[:-len(".result.json")], **obj})
        return out
