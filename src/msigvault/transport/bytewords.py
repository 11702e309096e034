"""Bytewords (BCR-2020-012): bytes as four-letter English words, with a CRC32 checksum.

Three styles carry the same 256 words:

- ``standard``: words separated by spaces (``able acid also``), for people to read aloud;
- ``uri``: words separated by hyphens (``able-acid-also``);
- ``minimal``: the first and last letter of each word, no separator (``aeadao``); this is what
  Uniform Resources (``ur:...``) use.

Every encoding ends with the four bytes of the big-endian CRC32 (ISO-HDLC, as zlib) of the data;
decoding checks it, so a mistyped or misread word is caught.
"""

from __future__ import annotations

import zlib

from . import TransportError

STANDARD = "standard"
URI = "uri"
MINIMAL = "minimal"
STYLES = (STANDARD, URI, MINIMAL)

WORDS = tuple(
    (
        "able acid also apex aqua arch atom aunt away axis back bald barn belt beta bias "
        "blue body brag brew bulb buzz calm cash cats chef city claw code cola cook cost "
        "crux curl cusp cyan dark data days deli dice diet door down draw drop drum dull "
        "duty each easy echo edge epic even exam exit eyes fact fair fern figs film fish "
        "fizz flap flew flux foxy free frog fuel fund gala game gear gems gift girl glow "
        "good gray grim guru gush gyro half hang hard hawk heat help high hill holy hope "
        "horn huts iced idea idle inch inky into iris iron item jade jazz join jolt jowl "
        "judo jugs jump junk jury keep keno kept keys kick kiln king kite kiwi knob lamb "
        "lava lazy leaf legs liar limp lion list logo loud love luau luck lung main many "
        "math maze memo menu meow mild mint miss monk nail navy need news next noon note "
        "numb obey oboe omit onyx open oval owls paid part peck play plus poem pool pose "
        "puff puma purr quad quiz race ramp real redo rich road rock roof ruby ruin runs "
        "rust safe saga scar sets silk skew slot soap solo song stub surf swan taco task "
        "taxi tent tied time tiny toil tomb toys trip tuna twin ugly undo unit urge user "
        "vast very veto vial vibe view visa void vows wall wand warm wasp wave waxy webs "
        "what when whiz wolf work yank yawn yell yoga yurt zaps zero zest zinc zone zoom"
    ).split()
)
assert len(WORDS) == 256

MINIMAL_WORDS = tuple(w[0] + w[3] for w in WORDS)
_BY_WORD = {w: i for i, w in enumerate(WORDS)}
_BY_MINIMAL = {w: i for i, w in enumerate(MINIMAL_WORDS)}
assert len(_BY_MINIMAL) == 256  # first+last letters are unique: that is what makes minimal work


class BytewordsError(TransportError):
    """Text is not valid Bytewords (unknown word, wrong length, or failed checksum)."""

    code = "transport.bytewords"


def crc32(data: bytes) -> int:
    """CRC-32 (ISO-HDLC, the zlib/PNG one) of ``data`` as an unsigned 32-bit integer."""
    return zlib.crc32(data) & 0xFFFFFFFF


def crc32_bytes(data: bytes) -> bytes:
    """The CRC-32 of ``data`` as 4 big-endian bytes (how Bytewords and BC-UR append it)."""
    return crc32(data).to_bytes(4, "big")


def encode(data: bytes, style: str = MINIMAL) -> str:
    """Encode ``data`` plus its CRC32 in the given style (``standard``, ``uri`` or ``minimal``)."""
    if style not in STYLES:
        raise BytewordsError(f"unknown Bytewords style {style!r}; use one of {', '.join(STYLES)}")
    body = bytes(data) + crc32_bytes(bytes(data))
    if style == MINIMAL:
        return "".join(MINIMAL_WORDS[b] for b in body)
    sep = " " if style == STANDARD else "-"
    return sep.join(WORDS[b] for b in body)


def decode(text: str, style: str = MINIMAL) -> bytes:
    """Decode Bytewords text (any letter case) and verify its checksum; return the data.

    Raises :class:`BytewordsError` with a message that says what is wrong.
    """
    if style not in STYLES:
        raise BytewordsError(f"unknown Bytewords style {style!r}; use one of {', '.join(STYLES)}")
    if not isinstance(text, str):
        raise BytewordsError(f"Bytewords must be text, not {type(text).__name__}")
    if not text.isascii():
        raise BytewordsError("Bytewords text contains non-ASCII characters: it is not Bytewords")
    lowered = text.lower()
    if style == MINIMAL:
        if len(lowered) % 2:
            raise BytewordsError(
                "minimal Bytewords have an even number of letters (two per byte); "
                "a letter is missing or extra: scan or copy it again"
            )
        table, words = _BY_MINIMAL, [lowered[i:i + 2] for i in range(0, len(lowered), 2)]
    else:
        sep = " " if style == STANDARD else "-"
        table, words = _BY_WORD, [w for w in lowered.split(sep) if w]
    out = bytearray()
    for n, word in enumerate(words, 1):
        value = table.get(word)
        if value is None:
            shown = word if len(word) <= 8 else word[:8] + "..."
            raise BytewordsError(
                f"{shown!r} (word {n}) is not a Bytewords word: the text was mistyped or misread"
            )
        out.append(value)
    if len(out) < 5:
        raise BytewordsError(
            "Bytewords text is too short: it needs at least one byte of data and four of checksum"
        )
    body, checksum = bytes(out[:-4]), bytes(out[-4:])
    if crc32_bytes(body) != checksum:
        raise BytewordsError(
            "Bytewords checksum does not match: a word was mistyped or misread; scan or copy it again"
        )
    return body
