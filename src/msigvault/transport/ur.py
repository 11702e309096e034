"""Uniform Resources (BCR-2020-005): typed CBOR as text, one QR code or an animated sequence.

A single-part UR is ``ur:<type>/<minimal bytewords of the CBOR payload>``. A multi-part UR is a
stream of ``ur:<type>/<seqNum>-<seqLen>/<minimal bytewords of a fountain part>``; any
``seqLen``-or-so frames, in any order, rebuild the payload (see :mod:`.fountain`).

Encoders emit lower case (the canonical form); QR codes carry the upper-case form, which fits the
QR alphanumeric mode (see :mod:`.qr`). Decoders accept either case.

Registry types handled here:

- ``crypto-psbt`` (BCR-2020-006, tag 310) and its successor ``psbt`` (tag 40310): the payload is a
  CBOR byte string holding the binary PSBT;
- ``crypto-output`` (BCR-2020-010, tag 308) and ``crypto-account`` (BCR-2020-015, tag 311): see
  :mod:`.registry`.
"""

from __future__ import annotations

import re

from . import ForeignFrameError, IncompleteTransfer, TransportError
from . import _cbor
from . import bytewords
from .fountain import (
    DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_LEN, FountainDecoder, FountainEncoder, FountainPart,
)

#: Default largest fragment per frame, in bytes of CBOR. 200 bytes make an upper-case UR frame of
#: about 460 characters: a version-11 QR code (alphanumeric mode) that phone and webcam scanners
#: read reliably from a screen.
DEFAULT_MAX_FRAGMENT_LEN = 200
DEFAULT_MIN_FRAGMENT_LEN = 10

PSBT_TYPES = ("crypto-psbt", "psbt")
PSBT_MAGIC = b"psbt\xff"

_TYPE = re.compile(r"^[a-z0-9-]+$")
_SEQ = re.compile(r"^([1-9][0-9]{0,9})-([1-9][0-9]{0,9})$")


def _check_type(ur_type: str) -> str:
    if not isinstance(ur_type, str) or not _TYPE.fullmatch(ur_type):
        raise TransportError(
            f"UR type {ur_type!r} is not valid: it must be lower-case letters, digits and hyphens "
            "(for example 'crypto-psbt')"
        )
    return ur_type


def _check_payload(cbor_payload) -> bytes:
    if not isinstance(cbor_payload, (bytes, bytearray, memoryview)):
        raise TransportError(f"a UR payload must be CBOR bytes, not {type(cbor_payload).__name__}")
    if not cbor_payload:
        raise TransportError("a UR payload cannot be empty")
    return bytes(cbor_payload)


def encode_ur(ur_type: str, cbor_payload: bytes) -> str:
    """Single-part UR: ``ur:<type>/<bytewords>`` (lower case)."""
    return f"ur:{_check_type(ur_type)}/{bytewords.encode(_check_payload(cbor_payload), bytewords.MINIMAL)}"


def _parse(text) -> "tuple[str, list[str]]":
    """Split UR text into (type, path components after the type)."""
    if not isinstance(text, str):
        raise TransportError(f"a UR must be text, not {type(text).__name__}")
    s = text.strip()
    if not s.isascii():
        raise TransportError("this is not a UR: it contains non-ASCII characters")
    s = s.lower()
    if not s.startswith("ur:"):
        shown = s[:16] + ("..." if len(s) > 16 else "")
        raise TransportError(
            f"this is not a UR (it does not start with 'ur:'): {shown!r}; scan the code shown by the "
            "wallet's animated-QR export"
        )
    components = s[3:].split("/")
    if len(components) not in (2, 3) or not all(components):
        raise TransportError(
            "a UR is 'ur:type/data' or 'ur:type/n-m/data'; this one has a different shape: it was "
            "cut off or mangled, scan it again"
        )
    return _check_type(components[0]), components[1:]


def decode_ur(text: str) -> "tuple[str, bytes]":
    """Decode a single-part UR into (type, CBOR payload). Multi-part frames need :class:`URDecoder`."""
    ur_type, components = _parse(text)
    if len(components) != 1:
        raise TransportError(
            f"this is frame {components[0]} of a multi-part ur:{ur_type}: collect all frames with "
            "URDecoder (or ur_to_psbt for a list of frames)"
        )
    return ur_type, bytewords.decode(components[0], bytewords.MINIMAL)


class UREncoder:
    """Emits the frames of one UR: a single part if the payload fits one fragment, otherwise
    ``ur:<type>/<n>-<seqLen>/...`` frames forever: the first ``seq_len`` are the plain fragments,
    the ones after that are fountain parts (each mixes several fragments), so a scanner that missed
    frames completes from whichever ones it catches next.
    """

    def __init__(self, ur_type: str, cbor_payload: bytes, max_fragment_len: int = DEFAULT_MAX_FRAGMENT_LEN,
                 first_seq_num: int = 0, min_fragment_len: int = DEFAULT_MIN_FRAGMENT_LEN):
        self.ur_type = _check_type(ur_type)
        self.cbor_payload = _check_payload(cbor_payload)
        if not isinstance(max_fragment_len, int) or max_fragment_len < 1:
            raise TransportError(f"max_fragment_len must be a positive whole number of bytes, not {max_fragment_len!r}")
        if isinstance(min_fragment_len, int):
            min_fragment_len = min(min_fragment_len, max_fragment_len)
        self._fountain = FountainEncoder(self.cbor_payload, max_fragment_len, first_seq_num, min_fragment_len)

    @property
    def seq_len(self) -> int:
        """How many fragments the payload is cut into (the minimum number of frames to scan)."""
        return self._fountain.seq_len

    @property
    def seq_num(self) -> int:
        """Sequence number of the last frame emitted."""
        return self._fountain.seq_num

    @property
    def fragment_len(self) -> int:
        return self._fountain.fragment_len

    @property
    def is_single_part(self) -> bool:
        return self._fountain.is_single_part

    @property
    def is_complete(self) -> bool:
        """True once every plain fragment has been emitted once."""
        return self._fountain.is_complete

    def next_part(self) -> str:
        part = self._fountain.next_part()
        if self.is_single_part:
            return encode_ur(self.ur_type, self.cbor_payload)
        body = bytewords.encode(part.cbor(), bytewords.MINIMAL)
        return f"ur:{self.ur_type}/{part.seq_num}-{part.seq_len}/{body}"

    def parts(self, count: int) -> "list[str]":
        """The next ``count`` frames."""
        return [self.next_part() for _ in range(count)]


class URDecoder:
    """Collects UR frames (single- or multi-part, any order, losses and repeats allowed).

    ``receive_part(text)`` returns True when the frame was taken in, False when the transfer was
    already complete (the frame is ignored). It raises :class:`TransportError` for text that is not a
    valid UR frame and :class:`ForeignFrameError` for a frame of another transfer (different type,
    checksum or length); the frames collected so far are kept, so scanning can simply continue.
    """

    def __init__(self, max_message_len: int = DEFAULT_MAX_MESSAGE_LEN,
                 max_fragments: int = DEFAULT_MAX_FRAGMENTS):
        self._fountain = FountainDecoder(max_message_len, max_fragments)
        self.reset()

    def reset(self) -> None:
        """Forget all frames (start a new scan)."""
        self._fountain.reset()
        self.ur_type: "str | None" = None
        self._single: "bytes | None" = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def is_complete(self) -> bool:
        return self._single is not None or self._fountain.is_complete

    @property
    def is_single_part(self) -> bool:
        return self._single is not None

    @property
    def progress(self) -> float:
        """Estimated completion in [0, 1], as the reference computes it: frames processed divided by
        1.75 x the fragment count, capped at 0.99 until the payload is rebuilt, then exactly 1.0.
        It never goes down."""
        if self._single is not None:
            return 1.0
        return self._fountain.progress

    @property
    def expected_part_count(self) -> "int | None":
        """Fragments in the transfer (known after the first multi-part frame)."""
        return self._fountain.expected_part_count

    @property
    def received_part_count(self) -> int:
        """Plain fragments recovered so far (each of 0..expected_part_count)."""
        return len(self._fountain.received_indexes)

    @property
    def processed_parts_count(self) -> int:
        return self._fountain.processed_parts_count

    @property
    def result(self) -> "tuple[str, bytes]":
        """(UR type, CBOR payload) of the completed transfer."""
        if self._single is not None:
            return self.ur_type, self._single
        if self._fountain.is_complete:
            return self.ur_type, self._fountain.result
        expected = self._fountain.expected_part_count
        if expected is None:
            raise IncompleteTransfer("no UR frame has been received yet: scan the QR code first")
        raise IncompleteTransfer(
            f"the transfer is incomplete: {len(self._fountain.received_indexes)} of {expected} fragments "
            "recovered so far; keep scanning the animated QR code"
        )

    # -- receiving -----------------------------------------------------------------------------

    def receive_part(self, text: str) -> bool:
        ur_type, components = _parse(text)
        if len(components) == 1:
            payload = bytewords.decode(components[0], bytewords.MINIMAL)
            self._check_same_type(ur_type)
            if self._single is not None:
                if payload != self._single:
                    raise ForeignFrameError(
                        f"a different single-part ur:{ur_type} was scanned after the first one was "
                        "complete: start a new scan for it"
                    )
                return False
            if self._fountain.expected_count is not None:
                raise ForeignFrameError(
                    f"a single-part ur:{ur_type} was scanned while collecting a multi-part transfer: "
                    "show one QR code at a time, or start the scan again"
                )
            self.ur_type = ur_type
            self._single = payload
            return True
        m = _SEQ.fullmatch(components[0])
        if not m:
            raise TransportError(
                f"UR frame sequence {components[0][:24]!r} is not '<number>-<count>': the frame is corrupt"
            )
        seq_num, seq_len = int(m.group(1)), int(m.group(2))
        part = FountainPart.from_cbor(bytewords.decode(components[1], bytewords.MINIMAL))
        if (seq_num, seq_len) != (part.seq_num, part.seq_len):
            raise TransportError(
                f"UR frame says it is {seq_num}-{seq_len} but its contents say "
                f"{part.seq_num}-{part.seq_len}: the frame is corrupt"
            )
        self._check_same_type(ur_type)
        if self._single is not None:
            raise ForeignFrameError(
                "a multi-part UR frame was scanned after a single-part UR completed: start a new scan"
            )
        self._fountain.validate_part(part)
        self.ur_type = ur_type
        try:
            return self._fountain.receive_part(part)
        finally:
            if self._fountain.expected_count is None:  # the fountain reset itself (checksum failure)
                self.ur_type = None

    def _check_same_type(self, ur_type: str) -> None:
        if self.ur_type is not None and ur_type != self.ur_type:
            raise ForeignFrameError(
                f"this frame is a ur:{ur_type} but the transfer being collected is a ur:{self.ur_type}: "
                "show one QR code at a time, or start the scan again"
            )


# --------------------------------------------------------------------------------- PSBT


def psbt_to_ur_parts(psbt_bytes: bytes, max_fragment_len: int = DEFAULT_MAX_FRAGMENT_LEN, *,
                     extra_parts: int = 0, ur_type: str = "crypto-psbt") -> "list[str]":
    """The UR frames of a binary PSBT (``ur:crypto-psbt`` by default, or the newer ``ur:psbt``).

    Returns ``seq_len`` frames (each fragment once) plus ``extra_parts`` fountain frames, which let a
    scanner that missed some frames finish without waiting for the loop to come round. A PSBT that
    fits one fragment gives one single-part UR (and no extras).
    """
    if ur_type not in PSBT_TYPES:
        raise TransportError(f"a PSBT travels as ur:crypto-psbt or ur:psbt, not ur:{ur_type}")
    data = _psbt_bytes(psbt_bytes)
    if not isinstance(extra_parts, int) or extra_parts < 0:
        raise TransportError(f"extra_parts must be a whole number >= 0, not {extra_parts!r}")
    encoder = UREncoder(ur_type, _cbor.dumps(data), max_fragment_len)
    if encoder.is_single_part:
        return [encoder.next_part()]
    return encoder.parts(encoder.seq_len + extra_parts)


def _psbt_bytes(psbt_bytes) -> bytes:
    if hasattr(psbt_bytes, "serialize") and not isinstance(psbt_bytes, (bytes, bytearray, memoryview)):
        psbt_bytes = psbt_bytes.serialize()
    if not isinstance(psbt_bytes, (bytes, bytearray, memoryview)):
        raise TransportError(f"a PSBT to encode must be bytes (binary PSBT), not {type(psbt_bytes).__name__}")
    data = bytes(psbt_bytes)
    if not data.startswith(PSBT_MAGIC):
        raise TransportError(
            "these bytes are not a binary PSBT (they do not start with 'psbt' 0xff); decode base64 "
            "or hex first"
        )
    return data


def ur_payload_to_psbt(ur_type: str, cbor_payload: bytes) -> bytes:
    """The PSBT bytes inside a decoded ``crypto-psbt`` / ``psbt`` payload."""
    if ur_type not in PSBT_TYPES:
        raise TransportError(
            f"the QR code carries a ur:{ur_type}, not a PSBT (ur:crypto-psbt): scan the PSBT export"
        )
    value = _cbor.loads(cbor_payload, f"the ur:{ur_type} payload")
    if _cbor.is_tag(value) and value.tag in (310, 40310):
        value = value.value
    if not isinstance(value, bytes):
        raise TransportError(f"the ur:{ur_type} payload must be a CBOR byte string holding the PSBT")
    if not value.startswith(PSBT_MAGIC):
        raise TransportError(
            f"the ur:{ur_type} payload is not a PSBT (it does not start with 'psbt' 0xff)"
        )
    return value


def ur_to_psbt(parts) -> bytes:
    """Rebuild a binary PSBT from UR text: one single-part UR, or the frames of a multi-part one
    (a list in any order; duplicates and frames beyond what is needed are fine).

    Raises :class:`IncompleteTransfer` if the frames are not enough, :class:`ForeignFrameError` if
    they come from different transfers.
    """
    return ur_payload_to_psbt(*_collect(parts))


# --------------------------------------------------------------------------------- descriptors


def descriptor_to_ur(descriptor: str) -> str:
    """A descriptor (checksum optional) as a single-part ``ur:crypto-output`` (BCR-2020-010).

    Covers sh / wsh / sh(wsh) / pkh / wpkh / sh(wpkh) / pk / combo / tr(KEY) around multi,
    sortedmulti or a key; keys are hex public keys (crypto-eckey) or extended public keys
    (crypto-hdkey) with key origin and children ``/0/*``, ``/<0;1>/*``, hardened or not.
    Private keys are refused: nothing secret goes into a QR code.
    """
    from .registry import descriptor_to_cbor

    return encode_ur("crypto-output", descriptor_to_cbor(descriptor))


def ur_to_descriptor(text) -> str:
    """The descriptor (with its checksum) in a ``ur:crypto-output``: one UR string, or the frames of
    a multi-part one."""
    from .registry import cbor_to_descriptor

    ur_type, payload = _collect(text)
    if ur_type != "crypto-output":
        raise TransportError(f"the QR code carries a ur:{ur_type}, not a descriptor (ur:crypto-output)")
    return cbor_to_descriptor(payload)


def account_to_ur(master_fingerprint, descriptors) -> str:
    """A ``ur:crypto-account`` (BCR-2020-015): the master fingerprint and account-level output
    descriptors, e.g. ``wsh([fp/48h/0h/0h/2h]xpub...)`` (keys without children)."""
    from .registry import account_to_cbor

    return encode_ur("crypto-account", account_to_cbor(master_fingerprint, descriptors))


def ur_to_account(text) -> "tuple[bytes, list[str]]":
    """(master fingerprint, account descriptors) of a ``ur:crypto-account``. Account entries such
    as ``wsh(KEY)`` name the script type a cosigner key is for; they are not spendable descriptors
    and carry no checksum."""
    from .registry import cbor_to_account

    ur_type, payload = _collect(text)
    if ur_type != "crypto-account":
        raise TransportError(f"the QR code carries a ur:{ur_type}, not an account (ur:crypto-account)")
    return cbor_to_account(payload)


def _collect(text) -> "tuple[str, bytes]":
    """(type, payload) of one UR string or an iterable of frames."""
    if isinstance(text, str):
        parts = [text]
    else:
        try:
            parts = list(text)
        except TypeError:
            raise TransportError(f"expected UR text or a list of UR frames, not {type(text).__name__}") from None
    decoder = URDecoder()
    for p in parts:
        decoder.receive_part(p)
        if decoder.is_complete:
            break
    return decoder.result
