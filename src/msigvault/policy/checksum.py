"""BIP380 descriptor checksums (8 characters over a GF(32) BCH code)."""

from __future__ import annotations

from ..errors import ChecksumError, InvalidDescriptor

INPUT_CHARSET = (
    "0123456789()[],'/*abcdefgh@:$%{}"
    "IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~"
    "ijklmnopqrstuvwxyzABCDEFGH`#\"\\ "
)
CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARPOS = {c: i for i, c in enumerate(INPUT_CHARSET)}
_GEN = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)


def _polymod(c: int, val: int) -> int:
    c0 = c >> 35
    c = ((c & 0x7FFFFFFFF) << 5) ^ val
    for i in range(5):
        if (c0 >> i) & 1:
            c ^= _GEN[i]
    return c


def descriptor_checksum(desc: str) -> str:
    """The 8-character checksum of a descriptor (without its ``#``)."""
    c = 1
    cls = 0
    clscount = 0
    for ch in desc:
        pos = _CHARPOS.get(ch)
        if pos is None:
            raise InvalidDescriptor(f"descriptor contains the character {ch!r}, which descriptors do not allow")
        c = _polymod(c, pos & 31)
        cls = cls * 3 + (pos >> 5)
        clscount += 1
        if clscount == 3:
            c = _polymod(c, cls)
            cls = 0
            clscount = 0
    if clscount > 0:
        c = _polymod(c, cls)
    for _ in range(8):
        c = _polymod(c, 0)
    c ^= 1
    return "".join(CHECKSUM_CHARSET[(c >> (5 * (7 - j))) & 31] for j in range(8))


def add_checksum(desc: str) -> str:
    return f"{desc}#{descriptor_checksum(desc)}"


def split_checksum(text: str, *, require: bool = True) -> "tuple[str, str | None]":
    """Split ``desc#checksum``, verifying the checksum. Returns (descriptor, checksum or None).

    Without a checksum, raise ChecksumError unless ``require=False``.
    """
    if text.count("#") > 1:
        raise ChecksumError("descriptor has more than one '#': only one checksum may follow it")
    if "#" not in text:
        if require:
            raise ChecksumError(
                "descriptor has no checksum (#xxxxxxxx): copy the full descriptor, or pass "
                "require_checksum=False if you typed it yourself and checked it"
            )
        descriptor_checksum(text)  # still validates the character set
        return text, None
    desc, given = text.split("#")
    if len(given) != 8:
        raise ChecksumError(f"descriptor checksum {given!r} must be 8 characters")
    expected = descriptor_checksum(desc)
    if given != expected:
        raise ChecksumError(
            f"descriptor checksum mismatch: it says #{given} but the descriptor hashes to #{expected}; "
            "the descriptor was altered or mistyped"
        )
    return desc, given
