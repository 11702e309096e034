"""The shared folder: envelopes between a coordinator and sites that allow no HTTP (docs/site.md).

    FOLDER/sites/<site identity id>/requests/<session>.msve   coordinator -> site: the newest sealed request
    FOLDER/sites/<site identity id>/requests/<session>.json   its context (vault, name, memo): advisory
    FOLDER/sites/<site identity id>/outbox/<session>-<sequence>.msve   site -> coordinator
    FOLDER/sites/<site identity id>/processed/<same name>[.result.json]  claimed by the coordinator's folder-sync

Everything in the folder is untrusted: an envelope is authenticated when it is opened, and its
context file only names what the laptop's signer checks anyway. Files are written atomically
(a temporary ``.NAME.*.tmp`` first, which nobody reads) and read with size limits.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..fileio import write_atomic
from ..identity.envelope import MAX_ENVELOPE
from .errors import FolderError

__all__ = ["SiteFolder", "OUTBOX_NAME", "REQUEST_NAME", "MAX_CONTEXT", "read_limited"]

#: an outgoing envelope: ``<session>-<sequence>.msve``
OUTBOX_NAME = re.compile(r"^([A-Za-z0-9._:-]{1,64})-([0-9]{1,20})\.msve$")
#: a request: ``<session>.msve`` and ``<session>.json``
REQUEST_NAME = re.compile(r"^([A-Za-z0-9._:-]{1,64})\.(msve|json)$")
MAX_CONTEXT = 64 * 1024
MAX_FILES = 10_000  # files looked at per directory and sync


def read_limited(path: Path, limit: int) -> bytes:
    """A file's bytes; FolderError (before reading it all) if it is larger than ``limit`` or not a plain file."""
    try:
        if not path.is_file() or path.is_symlink():
            raise FolderError(f"{path} is not a plain file: refused", path=path)
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise FolderError(f"cannot read {path}: {e.strerror or e}", path=path) from None
    if len(data) > limit:
        raise FolderError(f"{path} is larger than {limit:,} bytes: refused unread", path=path, limit=limit)
    return data


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
        folder = cls(base, site_id)
        if create:
            for d in (folder.requests, folder.outbox, folder.processed):
                try:
                    d.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise FolderError(f"cannot create {d}: {e.strerror or e}", path=d) from None
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

    # -- the coordinator's side ---------------------------------------------------------------

    def write_request(self, session: str, envelope: bytes, context: "dict[str, Any]") -> None:
        """The newest sealed request of ``session`` and its context (the envelope last: a reader that finds
        it finds its context)."""
        write_atomic(self.requests / f"{session}.json", json.dumps(context, separators=(",", ":")).encode() + b"\n")
        write_atomic(self.requests / f"{session}.msve", envelope)

    def remove_requests_except(self, sessions: "set[str]") -> "list[str]":
        """Delete the request files of sessions no longer pending; their session ids."""
        gone = set()
        for path in self._names(self.requests):
            m = REQUEST_NAME.match(path.name)
            if m and m.group(1) not in sessions:
                path.unlink(missing_ok=True)
                gone.add(m.group(1))
        return sorted(gone)

    def outgoing(self) -> "list[tuple[Path, str, int]]":
        """(path, session, sequence) of the site's envelopes waiting in its outbox, oldest sequence first."""
        found = []
        for path in self._names(self.outbox):
            m = OUTBOX_NAME.match(path.name)
            if m:
                found.append((path, m.group(1), int(m.group(2))))
        return sorted(found, key=lambda t: (t[2], t[1]))

    def claim(self, path: Path) -> "Path | None":
        """Take an envelope out of the outbox before reading it (one atomic rename into processed/): None if
        another folder-sync took it first, so two syncs never both submit one file."""
        self.processed.mkdir(parents=True, exist_ok=True)
        target = self.processed / path.name
        if target.exists():
            target = self.processed / f"{path.name}.again-{os.getpid()}-{len(os.listdir(self.processed))}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise FolderError(f"cannot move {path} into {self.processed}: {e.strerror or e}", path=path) from None
        return target

    def record_result(self, claimed: Path, result: "dict[str, Any]") -> Path:
        """What became of a claimed envelope, beside it: ``NAME.result.json``."""
        return write_atomic(claimed.with_name(f"{claimed.name}.result.json"),
                            json.dumps(result, separators=(",", ":")).encode() + b"\n")

    # -- the site's side ----------------------------------------------------------------------

    def incoming(self) -> "Iterator[tuple[str, bytes, dict[str, Any]]]":
        """(session, envelope, context) of every request the coordinator left for this site."""
        for path in self._names(self.requests):
            m = REQUEST_NAME.match(path.name)
            if not m or m.group(2) != "msve":
                continue
            session = m.group(1)
            envelope = read_limited(path, MAX_ENVELOPE)
            context_path = self.requests / f"{session}.json"
            try:
                context = json.loads(read_limited(context_path, MAX_CONTEXT))
            except (ValueError, UnicodeDecodeError):
                context = None
            except FolderError:
                context = None
            if not isinstance(context, dict):
                raise FolderError(f"{context_path} is missing or not a JSON object: run the coordinator's "
                                  "folder-sync again", path=context_path)
            yield session, envelope, context

    def post(self, session: str, sequence: int, envelope: bytes) -> Path:
        """Leave an envelope in the outbox for the coordinator's next folder-sync."""
        self.outbox.mkdir(parents=True, exist_ok=True)
        return write_atomic(self.outbox / f"{session}-{sequence}.msve", envelope, overwrite=False)

    def results(self) -> "list[dict[str, Any]]":
        """What the coordinator's folder-sync made of this site's envelopes (its result files)."""
        out = []
        for path in self._names(self.processed):
            if path.name.endswith(".result.json"):
                try:
                    obj = json.loads(read_limited(path, MAX_CONTEXT))
                except (ValueError, UnicodeDecodeError):
                    continue
                if isinstance(obj, dict):
                    out.append({"file": path.name[:-len(".result.json")], **obj})
        return out

    @staticmethod
    def _names(directory: Path) -> "list[Path]":
        try:
            entries = sorted(directory.iterdir())[:MAX_FILES]
        except FileNotFoundError:
            return []
        except OSError as e:
            raise FolderError(f"cannot list {directory}: {e.strerror or e}", path=directory) from None
        return [p for p in entries if not p.name.startswith(".")]
