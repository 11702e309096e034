"""BIP380 descriptor checksums (8 characters over a GF(32) BCH code).

Descriptors longer than :data:`MAX_DESCRIPTOR_LENGTH` are refused before any work is done on
them (docs/formats.md, "Limits").
"""

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


def _gen_table() -> "tuple[int, ...]":
    """The XOR of the generators each 5-bit value selects: one lookup instead of five tests."""
    out = []
    for v in range(32):
        acc = 0
        for i in range(5):
            if (v >> i) & 1:
                acc ^= _GEN[i]
        out.append(acc)
    return tuple(out)


_GEN_TABLE = _gen_table()
_MASK = 0x7FFFFFFFF

#: Longest descriptor accepted (characters, without ``#checksum``): a 999-key taproot vault
#: whose keys carry four-step origins and ``/<0;1>/*`` needs about 178 characters a key
#: (about 178,000 in all, or 143,000 with BIP87/BIP48 origins); this leaves a wide margin.
MAX_DESCRIPTOR_LENGTH = 256 * 1024


def check_length(desc: str) -> None:
    """Refuse a descriptor longer than :data:`MAX_DESCRIPTOR_LENGTH` (a cheap, first check)."""
    if len(desc) > MAX_DESCRIPTOR_LENGTH:
        raise InvalidDescriptor(
            f"the descriptor has {len(desc)} characters, more than the {MAX_DESCRIPTOR_LENGTH} "
            "msigvault reads (a 999-key taproot vault needs about 180,000): it is not a vault "
            "descriptor; check you passed the right text"
        )


def _polymod(c: int, val: int) -> int:
    return ((c & _MASK) << 5) ^ val ^ _GEN_TABLE[c >> 35]


def descriptor_checksum(desc: str) -> str:
    """The 8-character checksum of a descriptor (without its ``#``)."""
    check_length(desc)
    charpos, table = _CHARPOS, _GEN_TABLE
    c = 1
    cls = 0
    clscount = 0
    for ch in desc:
        pos = charpos.get(ch)
        if pos is None:
            raise InvalidDescriptor(f"descriptor contains the character {ch!r}, which descriptors do not allow")
        c = ((c & _MASK) << 5) ^ (pos & 31) ^ table[c >> 35]
        cls = cls * 3 + (pos >> 5)
        clscount += 1
        if clscount == 3:
            c = ((c & _MASK) << 5) ^ cls ^ table[c >> 35]
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

    Without a checksum, raise ChecksumError unless ``require=False``. Text longer than
    :data:`MAX_DESCRIPTOR_LENGTH` (plus the checksum) is refused before anything else.
    """
    if len(text) > MAX_DESCRIPTOR_LENGTH + 9:
        check_length(text)
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
