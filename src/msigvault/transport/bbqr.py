"""BBQr (coinkite/BBQr, "Better Bitcoin QR"): a file split across a series of QR codes.

Coldcard, Sparrow, Nunchuk and others show PSBTs, transactions and vault files as BBQr. Each QR
code holds upper-case text in the QR alphanumeric set::

    B$ Z P 08 03 <body>
    |  | |  |  '-- which part this is (two base-36 digits, 00-ZZ)
    |  | |  '----- how many parts there are (two base-36 digits, 01-ZZ)
    |  | '-------- file type: P PSBT, T transaction, J JSON, C CBOR, U UTF-8 text, B binary, ...
    |  '---------- encoding: H hex, 2 base32 (RFC 4648, no padding), Z raw deflate then base32
    '------------- fixed header

The file is encoded (and for ``Z`` compressed) as a whole, then cut into parts of equal length
except the last, each a whole number of bytes. There is no checksum: QR codes carry their own
error correction. Parts may be scanned in any order and repeated; all must be seen.

``Z`` is zlib's raw deflate with a 1 KiB window (``wbits=10``, no header: ``wbits=-10`` in
Python's zlib), as the spec fixes it. Decompression is incremental and stops at ``max_size`` bytes,
so a small hostile series cannot expand into gigabytes.
"""

from __future__ import annotations

import base64
import math
import re
import zlib
from dataclasses import dataclass

from . import ForeignFrameError, IncompleteTransfer, TransportError

PREFIX = "B$"
HEADER_LEN = 8
MAX_PARTS = 1295  # "ZZ" in base 36

#: Encodings (third header character) and what they mean.
ENCODINGS = {"H": "hex", "2": "base32", "Z": "zlib-compressed base32"}
#: File types (fourth header character): the spec's table, plus the Key Teleport codes of
#: Coinkite's reference implementation (R, S, E).
FILE_TYPES = {
    "P": "PSBT", "T": "transaction", "J": "JSON", "C": "CBOR", "U": "text", "B": "binary data",
    "X": "executable", "R": "Key Teleport (receive)", "S": "Key Teleport (send)",
    "E": "Key Teleport PSBT",
}

#: Characters a QR code in alphanumeric mode holds at error level L, for versions 1..40
#: (ISO/IEC 18004 capacity table; the BBQr spec's "Chars" column).
QR_ALNUM_CAPACITY_L = (
    25, 47, 77, 114, 154, 195, 224, 279, 335, 395, 468, 535, 619, 667, 758, 854, 938, 1046, 1153,
    1249, 1352, 1460, 1588, 1704, 1853, 1990, 2132, 2223, 2369, 2520, 2677, 2840, 3009, 3183, 3351,
    3537, 3729, 3927, 4087, 4296,
)

#: Default largest QR version of a frame: a version-11 code (61 x 61 modules) is what a 200-byte
#: UR fragment needs, and what phones and webcams read reliably off a screen.
DEFAULT_MAX_VERSION = 11
#: Smallest version the splitter picks by default (as Coinkite's reference does).
DEFAULT_MIN_VERSION = 5
#: Largest file a decoder rebuilds by default (bytes), after decompression; the same limit as
#: the UR decoder's largest message.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024
#: zlib ``wbits`` of the ``Z`` encoding: raw deflate (no header), 2**10-byte window.
ZLIB_WBITS = -10

_INFLATE_STEP = 64 * 1024  # output bytes per zlib call: memory stays near max_size
_SPLIT_MOD = {"H": 2, "2": 8, "Z": 8}
_BODY = {"H": re.compile(r"[0-9A-F]*"), "2": re.compile(r"[A-Z2-7]*"), "Z": re.compile(r"[A-Z2-7]*")}
_B36 = re.compile(r"[0-9A-Z]{2}")
_VALID_B32_TAIL = (0, 2, 4, 5, 7)  # lengths mod 8 of unpadded base32 of whole bytes


@dataclass(frozen=True)
class BBQrHeader:
    """The eight header characters of one BBQr part."""

    encoding: str
    file_type: str
    total: int
    index: int


@dataclass(frozen=True)
class BBQrSplit:
    """A file as BBQr parts: ``parts`` in order, all fitting a QR code of ``version``."""

    version: int
    encoding: str
    file_type: str
    parts: "tuple[str, ...]"


@dataclass(frozen=True)
class BBQrFile:
    """A rebuilt BBQr file: its type code, the encoding it travelled in, and its bytes."""

    file_type: str
    encoding: str
    data: bytes


# ------------------------------------------------------------------------------------ helpers


def is_bbqr(text) -> bool:
    """True if ``text`` looks like a BBQr part (starts with ``B$``)."""
    return isinstance(text, str) and text.lstrip().startswith(PREFIX)


def qr_capacity(version: int) -> int:
    """Alphanumeric characters a QR code of ``version`` (1-40) holds at error level L."""
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 40:
        raise TransportError(f"QR version must be a whole number from 1 to 40, not {version!r}")
    return QR_ALNUM_CAPACITY_L[version - 1]


def _b36(n: int) -> str:
    hi, lo = divmod(n, 36)
    return "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[hi] + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[lo]


def _b32decode(body: str) -> bytes:
    data = base64.b32decode(body + "=" * (-len(body) % 8))
    if base64.b32encode(data).decode("ascii").rstrip("=") != body:
        raise TransportError("a BBQr part's base32 has stray bits after its last byte: the frame is corrupt")
    return data


def _deflate(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, ZLIB_WBITS)
    return z.compress(data) + z.flush()


def _inflate(data: bytes, max_size: int) -> bytes:
    """Raw deflate with a 1 KiB window, incrementally, refusing output beyond ``max_size``."""
    d = zlib.decompressobj(ZLIB_WBITS)
    out = bytearray()
    pending = data
    try:
        while not d.eof:
            chunk = d.decompress(pending, min(_INFLATE_STEP, max_size + 1 - len(out)))  # >= 1: bounded
            out += chunk
            if len(out) > max_size:
                raise TransportError(
                    f"the BBQr file decompresses to more than {max_size} bytes: refused (a zip bomb, or "
                    "not the file you expect); raise max_size only for a file you trust to be that big"
                )
            pending = d.unconsumed_tail
            if not chunk and not pending:
                break
    except zlib.error as e:
        raise TransportError(
            f"the BBQr data is not valid deflate with a 1 KiB window (wbits=10) as encoding Z requires "
            f"({e}): the frames are corrupt or the sender used other zlib settings"
        ) from None
    if not d.eof:
        raise TransportError("the BBQr compressed data ends early: the frames are corrupt or truncated")
    if d.unused_data:
        raise TransportError("the BBQr compressed data has bytes after its end: the frames are corrupt")
    return bytes(out)


# ------------------------------------------------------------------------------------ encoding


def _encode(data: bytes, encoding: str) -> "tuple[str, str]":
    """(encoding actually used, body text): ``Z`` falls back to ``2`` when deflate does not help."""
    if encoding == "H":
        return "H", data.hex().upper()
    if encoding == "Z":
        packed = _deflate(data)
        if len(packed) < len(data):
            return "Z", base64.b32encode(packed).decode("ascii").rstrip("=")
    return "2", base64.b32encode(data).decode("ascii").rstrip("=")


def _check_range(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TransportError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


def plan_split(length: int, encoding: str, *, min_version: int = DEFAULT_MIN_VERSION,
               max_version: int = 40, min_split: int = 1, max_split: int = MAX_PARTS
               ) -> "tuple[int, int, int]":
    """(version, parts, characters per part) for ``length`` body characters: the fewest parts,
    then the lowest version in ``min_version..max_version``; parts are balanced (equal length, a
    whole number of bytes each, the last no longer)."""
    min_version = min(_check_range("min_version", min_version, 1, 40), max_version)
    _check_range("max_version", max_version, 1, 40)
    _check_range("max_split", max_split, 1, MAX_PARTS)
    _check_range("min_split", min_split, 1, max_split)
    mod = _SPLIT_MOD[encoding]
    options = []
    for version in range(min_version, max_version + 1):
        cap = qr_capacity(version) - HEADER_LEN
        count = 1 if length <= cap else math.ceil(length / (cap - cap % mod))
        if min_split <= count <= max_split:
            options.append((count, version))
    if not options:
        raise TransportError(
            f"{length} characters of BBQr data do not fit {min_split}-{max_split} QR codes of version "
            f"{min_version}-{max_version}: allow a larger max_version or more parts"
        )
    count, version = min(options)
    per = math.ceil(length / count)
    per += -per % mod if count > 1 else 0
    return version, count, per


def bbqr_split(data, file_type: str = "P", *, encoding: str = "Z", min_version: int = DEFAULT_MIN_VERSION,
               max_version: int = 40, min_split: int = 1, max_split: int = MAX_PARTS) -> BBQrSplit:
    """Split ``data`` (bytes, or text as UTF-8) into BBQr parts that each fit a QR code of
    ``version`` at error level L in alphanumeric mode.

    ``encoding`` ``Z`` (default) compresses and falls back to ``2`` when compression does not make
    the data smaller; ``2`` is base32, ``H`` hex. The split uses the fewest parts, then the lowest
    QR version, within the bounds given.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TransportError(f"BBQr carries bytes or text, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise TransportError("there is nothing to encode: the data is empty")
    if file_type not in FILE_TYPES:
        raise TransportError(f"BBQr file type {file_type!r} is not one of {', '.join(FILE_TYPES)}")
    if encoding not in ENCODINGS:
        raise TransportError(f"BBQr encoding {encoding!r} is not H (hex), 2 (base32) or Z (zlib)")
    encoding, body = _encode(data, encoding)
    version, count, per = plan_split(len(body), encoding, min_version=min_version,
                                     max_version=max_version, min_split=min_split, max_split=max_split)
    head = f"{PREFIX}{encoding}{file_type}{_b36(count)}"
    parts = tuple(head + _b36(i) + body[i * per:(i + 1) * per] for i in range(count))
    return BBQrSplit(version, encoding, file_type, parts)


def psbt_to_bbqr_parts(psbt, *, max_version: int = DEFAULT_MAX_VERSION, encoding: str = "Z") -> "list[str]":
    """The BBQr parts (file type ``P``) of a binary PSBT, each fitting a QR code of at most
    ``max_version``."""
    from .ur import _psbt_bytes

    return list(bbqr_split(_psbt_bytes(psbt), "P", encoding=encoding, max_version=max_version).parts)


# ------------------------------------------------------------------------------------ decoding


def parse_header(text: str) -> BBQrHeader:
    """The header of one BBQr part; :class:`TransportError` says what is wrong with it."""
    if not isinstance(text, str):
        raise TransportError(f"a BBQr part must be text, not {type(text).__name__}")
    if not text.startswith(PREFIX):
        shown = text[:12] + ("..." if len(text) > 12 else "")
        raise TransportError(f"this is not a BBQr part (it does not start with 'B$'): {shown!r}")
    if len(text) < HEADER_LEN:
        raise TransportError(f"a BBQr part has an 8-character header; this one has {len(text)} characters")
    encoding, file_type, total, index = text[2], text[3], text[4:6], text[6:8]
    if encoding not in ENCODINGS:
        raise TransportError(
            f"BBQr encoding {encoding!r} is unknown: the spec defines H (hex), 2 (base32) and Z (zlib)"
        )
    if file_type not in FILE_TYPES:
        raise TransportError(f"BBQr file type {file_type!r} is reserved or unknown (known: {''.join(FILE_TYPES)})")
    if not (_B36.fullmatch(total) and _B36.fullmatch(index)):
        raise TransportError(
            f"BBQr part numbers {total!r}/{index!r} are not two upper-case base-36 digits each: the frame is corrupt"
        )
    header = BBQrHeader(encoding, file_type, int(total, 36), int(index, 36))
    if header.total == 0:
        raise TransportError("a BBQr header says the file has 0 parts: the frame is corrupt")
    if header.index >= header.total:
        raise TransportError(
            f"a BBQr part says it is part {header.index} of {header.total} (numbered from 0): the frame is corrupt"
        )
    return header


def _check_body(header: BBQrHeader, body: str) -> None:
    if len(body) > QR_ALNUM_CAPACITY_L[-1] - HEADER_LEN:
        raise TransportError(f"a BBQr part of {len(body) + HEADER_LEN} characters cannot come from one QR code")
    if not body:
        raise TransportError(f"BBQr part {header.index} carries no data: the frame is corrupt")
    if not _BODY[header.encoding].fullmatch(body):
        allowed = "0-9 A-F" if header.encoding == "H" else "A-Z 2-7"
        raise TransportError(
            f"BBQr part {header.index} has characters outside {allowed}, the alphabet of encoding "
            f"{header.encoding}: the frame is corrupt"
        )
    last = header.index == header.total - 1
    mod = _SPLIT_MOD[header.encoding]
    if not last and len(body) % mod:
        raise TransportError(
            f"BBQr part {header.index} has {len(body)} characters, not a multiple of {mod}: every part "
            "but the last must hold whole bytes"
        )
    if header.encoding == "H" and len(body) % 2 or header.encoding != "H" and len(body) % 8 not in _VALID_B32_TAIL:
        raise TransportError(f"BBQr part {header.index} does not hold a whole number of bytes: the frame is corrupt")


class BBQrDecoder:
    """Collects BBQr parts (any order, repeats fine) until every part has been seen.

    ``receive_part(text)`` returns True when the part was new, False for a repeat. It raises
    :class:`TransportError` for text that is not a valid part and :class:`ForeignFrameError` for
    a part that cannot belong with those collected (other header, other length, or a repeat with
    other contents); the parts collected so far are kept, so scanning can go on.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE):
        self.max_size = _check_range("max_size", max_size, 1, 1 << 40)
        self.reset()

    def reset(self) -> None:
        """Forget all parts (start a new scan)."""
        self._first: "BBQrHeader | None" = None
        self._bodies: "dict[int, str]" = {}
        self._part_len: "int | None" = None
        self._result: "BBQrFile | None" = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def file_type(self) -> "str | None":
        return None if self._first is None else self._first.file_type

    @property
    def expected_part_count(self) -> "int | None":
        return None if self._first is None else self._first.total

    @property
    def received_part_count(self) -> int:
        return len(self._bodies)

    @property
    def missing_parts(self) -> "list[int]":
        """Indexes (from 0) of the parts not seen yet."""
        total = self.expected_part_count or 0
        return [i for i in range(total) if i not in self._bodies]

    @property
    def is_complete(self) -> bool:
        return self._first is not None and len(self._bodies) == self._first.total

    @property
    def progress(self) -> float:
        """Parts seen divided by parts in the file (exact: BBQr has no fountain code)."""
        return 0.0 if self._first is None else len(self._bodies) / self._first.total

    @property
    def result(self) -> BBQrFile:
        """The rebuilt file (decoded, and decompressed for ``Z``) once every part has been seen."""
        if self._first is None:
            raise IncompleteTransfer("no BBQr part has been received yet: scan the QR code first")
        if not self.is_complete:
            shown = ", ".join(str(i) for i in self.missing_parts[:10])
            more = ", ..." if len(self.missing_parts) > 10 else ""
            raise IncompleteTransfer(
                f"the BBQr transfer is incomplete: {len(self._bodies)} of {self._first.total} parts seen "
                f"(missing {shown}{more}); keep scanning the animated QR code"
            )
        if self._result is None:
            self._result = self._decode()
        return self._result

    # -- receiving -----------------------------------------------------------------------------

    def receive_part(self, text: str) -> bool:
        if not isinstance(text, str):
            raise TransportError(f"a BBQr part must be text, not {type(text).__name__}")
        text = text.strip()
        header = parse_header(text)
        body = text[HEADER_LEN:]
        _check_body(header, body)
        self._check_fits(header, body)
        if header.index in self._bodies:
            if self._bodies[header.index] != body:
                raise ForeignFrameError(
                    f"BBQr part {header.index} was seen twice with different contents: two different "
                    "files are being shown; scan one QR code at a time, or start the scan again"
                )
            return False
        self._first = self._first or header
        if header.index != header.total - 1:
            self._part_len = len(body)
        self._bodies[header.index] = body
        return True

    def _check_fits(self, header: BBQrHeader, body: str) -> None:
        """Refuse a part that cannot belong with those collected (nothing is changed on refusal)."""
        first = self._first
        if first is not None:
            for what, mine, theirs in (("encoding", header.encoding, first.encoding),
                                       ("file type", header.file_type, first.file_type),
                                       ("part count", header.total, first.total)):
                if mine != theirs:
                    raise ForeignFrameError(
                        f"this BBQr part has {what} {mine!r} but the parts collected so far have "
                        f"{theirs!r}: it belongs to another file; scan one QR code at a time, or start "
                        "the scan again"
                    )
        last = header.index == header.total - 1
        if self._part_len is not None and (len(body) > self._part_len if last else len(body) != self._part_len):
            raise ForeignFrameError(
                f"BBQr part {header.index} has {len(body)} characters but the other parts have "
                f"{self._part_len}: parts of one file are all equal except the last (never longer); "
                "it belongs to another file"
            )
        if self._part_len is None and not last:
            tail = self._bodies.get(header.total - 1)
            if tail is not None and len(tail) > len(body):
                raise ForeignFrameError(
                    f"BBQr part {header.index} has {len(body)} characters, fewer than the last part's "
                    f"{len(tail)}: it belongs to another file"
                )
            at_least = (header.total - 1) * len(body) * (4 if header.encoding == "H" else 5) // 8
            if header.encoding != "Z" and at_least > self.max_size:
                raise TransportError(
                    f"this BBQr file is at least {at_least} bytes, more than the {self.max_size}-byte limit: "
                    "refused; raise max_size only for a file you trust to be that big"
                )

    def _decode(self) -> BBQrFile:
        first = self._first
        body = "".join(self._bodies[i] for i in range(first.total))
        if first.encoding == "H":
            data = bytes.fromhex(body)
        else:
            data = _b32decode(body)
        if first.encoding == "Z":
            data = _inflate(data, self.max_size)
        elif len(data) > self.max_size:
            raise TransportError(f"the BBQr file is {len(data)} bytes, more than the {self.max_size}-byte limit")
        if not data:
            raise TransportError("the BBQr file is empty")
        return BBQrFile(first.file_type, first.encoding, data)


def bbqr_join(parts, *, max_size: int = DEFAULT_MAX_SIZE) -> BBQrFile:
    """Rebuild a file from BBQr parts (a list in any order; repeats are fine)."""
    if isinstance(parts, str):
        parts = [parts]
    decoder = BBQrDecoder(max_size)
    for text in parts:
        decoder.receive_part(text)
    return decoder.result


def bbqr_file_to_psbt(result: BBQrFile) -> bytes:
    """The PSBT in a rebuilt BBQr file, which must have file type ``P``."""
    from .ur import PSBT_MAGIC

    if result.file_type != "P":
        raise TransportError(
            f"the BBQr code carries {FILE_TYPES[result.file_type]} (type {result.file_type}), not a PSBT "
            "(type P): scan the PSBT export"
        )
    if not result.data.startswith(PSBT_MAGIC):
        raise TransportError("the BBQr file says it is a PSBT but does not start with 'psbt' 0xff")
    return result.data


def bbqr_to_psbt(parts, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """The binary PSBT carried by BBQr parts (type ``P``, any order, repeats fine)."""
    return bbqr_file_to_psbt(bbqr_join(parts, max_size=max_size))
