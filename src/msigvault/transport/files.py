"""PSBT files for USB sticks and shared folders: binary (BIP174 ``.psbt``), base64 or hex text.

Reading detects the encoding from the content, so a keyholder never has to say which one a file
uses. A text file of UR frames (one ``ur:crypto-psbt`` per line, any order) or of BBQr parts
(one ``B$...`` per line, any order, as Coinkite's tools save a scan) is read too.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..fileio import write_atomic
from . import TransportError
from .ur import PSBT_MAGIC, _psbt_bytes, ur_to_psbt

if TYPE_CHECKING:
    from ..psbt.psbt import Psbt

ENCODINGS = ("binary", "base64", "hex")

#: Refuse files larger than this (bytes): a vault PSBT is far smaller, and the limit keeps a wrong
#: file (a disk image on the stick) from being read into memory.
MAX_FILE_SIZE = 64 * 1024 * 1024


def psbt_from_text(text: str) -> bytes:
    """Binary PSBT from base64 (``cHNidP8...``) or hex (``70736274ff...``) text; whitespace ignored."""
    s = "".join(text.split())
    if s.lower().startswith("70736274ff"):
        try:
            data = bytes.fromhex(s)
        except ValueError:
            raise TransportError("the PSBT text starts like hex but is not valid hex") from None
    elif s.startswith("cHNidP8"):
        try:
            data = base64.b64decode(s, validate=True)
        except (binascii.Error, ValueError):
            raise TransportError("the PSBT text starts like base64 but is not valid base64") from None
    else:
        shown = s[:12] + ("..." if len(s) > 12 else "")
        raise TransportError(
            f"this is not a PSBT ({shown!r}): expected a ur:crypto-psbt, base64 (cHNidP8...) or hex "
            "(70736274ff...)"
        )
    if not data.startswith(PSBT_MAGIC):  # pragma: no cover - implied by the prefixes above
        raise TransportError("the decoded bytes are not a PSBT")
    return data


def write_psbt_file(psbt: "bytes | Psbt", path: "str | os.PathLike[str]", *, encoding: str = "binary",
                    overwrite: bool = False) -> Path:
    """Write a PSBT (bytes, or an object with ``serialize()``) atomically.

    ``binary`` is the BIP174 file format (``.psbt``, what Bitcoin Core, Sparrow and hardware
    wallets read from SD cards); ``base64`` and ``hex`` write one line of text.
    """
    data = _psbt_bytes(psbt)
    if encoding == "binary":
        out = data
    elif encoding == "base64":
        out = base64.b64encode(data) + b"\n"
    elif encoding == "hex":
        out = data.hex().encode() + b"\n"
    else:
        raise TransportError(f"unknown PSBT file encoding {encoding!r}: use one of {', '.join(ENCODINGS)}")
    return write_atomic(path, out, overwrite=overwrite)


def read_psbt_file(path: "str | os.PathLike[str]") -> bytes:
    """The binary PSBT in a file written as binary, base64, hex, UR frames or BBQr parts (one per
    line)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_SIZE:
            raise TransportError(f"{path} is {size} bytes, too large to be a PSBT: is it the right file?",
                                 path=path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise TransportError(f"{path}: no such file", path=path) from None
    except IsADirectoryError:
        raise TransportError(f"{path} is a directory, not a PSBT file", path=path) from None
    except OSError as e:
        raise TransportError(f"cannot read {path}: {e.strerror or e}", path=path) from None
    if data.startswith(PSBT_MAGIC):
        return data
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise TransportError(
            f"{path} is neither a binary PSBT (it does not start with 'psbt' 0xff) nor text",
            path=path,
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0][:3].lower() == "ur:":
        return ur_to_psbt(lines)
    if lines and lines[0].startswith("B$"):
        from .bbqr import bbqr_to_psbt

        try:
            return bbqr_to_psbt(lines)
        except TransportError as e:
            raise type(e)(f"{path}: {e}", path=path).locate(**e.fields()) from None
    try:
        return psbt_from_text(text)
    except TransportError as e:
        raise TransportError(f"{path}: {e}", path=path).locate(**e.fields()) from None
