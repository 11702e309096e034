"""Key-health challenges and responses as QR codes (BBQr, file type ``J``: JSON).

A keyholder's air-gapped laptop may have no USB port the reserve allows: the coordinator shows
each keyholder's challenge as one QR code, the keyholder's laptop reads it from a photo or a
webcam capture, and shows the response as a QR code the coordinator photographs back. The code
is Coinkite's BBQr (``B$`` + zlib-compressed base32, the same machinery ``msigvault qr`` uses for
PSBTs) carrying the compact JSON document, so Coldcard-style scanners and ours read it alike.
Both documents are small (about 600 and 300 bytes), so each fits one code; a series of BBQr parts
(an animation) is read too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..transport import TransportError
from ..transport import bbqr
from .errors import HealthCheckError

MAX_DOCUMENT_BYTES = 64 * 1024  # a challenge file or a response: far below this
IMAGE_MAGICS = (b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*")
# (PNG, GIF, JPEG, BMP, TIFF: the formats a webcam capture or a phone photo arrives in)


def is_image(path: "str | Path") -> bool:
    """True if the file starts like an image (PNG, GIF, JPEG, BMP, TIFF), not like JSON."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return any(head.startswith(m) for m in IMAGE_MAGICS)


def qr_text(document: Mapping[str, Any]) -> str:
    """The one BBQr text (``B$Z J 01 00 ...``) holding ``document`` as compact JSON."""
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise HealthCheckError(f"the document is {len(body)} bytes, above the QR limit of {MAX_DOCUMENT_BYTES}")
    return bbqr.bbqr_split(body, "J", max_split=1, max_version=40).parts[0]


def write_qr(document: Mapping[str, Any], path: "str | Path", *, overwrite: bool = False) -> Path:
    """Write ``document`` as one QR code: SVG if ``path`` ends in ``.svg``, else PNG (atomically)."""
    from ..transport import qr as q

    text = qr_text(document)
    if str(path).lower().endswith(".svg"):
        return q.qr_svg(text, path, overwrite=overwrite)
    return q.qr_png(text, path, overwrite=overwrite)


def read_qr(images: "Iterable[str | Path]", what: str) -> Any:
    """The JSON document shown in QR images: the BBQr parts of one ``J`` file (any order, every
    part needed) or one code holding the JSON text itself. ``what`` names the document in errors."""
    from ..transport.qr import read_qr_images

    texts = read_qr_images(list(images), skip_unreadable=True)
    if not texts:
        raise HealthCheckError(f"no readable QR code in the image(s) of the {what}: take the picture again "
                               "closer, sharper and without glare")
    parts = [t for t in texts if bbqr.is_bbqr(t)]
    if parts and len(parts) != len(texts):
        raise HealthCheckError(f"the image(s) of the {what} mix BBQr parts and other QR codes: give one {what}")
    if parts:
        try:
            result = bbqr.bbqr_join(parts, max_size=MAX_DOCUMENT_BYTES)
        except TransportError as e:
            raise HealthCheckError(f"the QR code(s) of the {what} do not make one BBQr file ({e})") from None
        if result.file_type != "J":
            raise HealthCheckError(f"the QR code carries {bbqr.FILE_TYPES[result.file_type]} (BBQr type "
                                   f"{result.file_type}), not the JSON of a {what} (type J)")
        data = result.data
    else:
        if len(set(texts)) != 1:
            raise HealthCheckError(f"the image(s) hold {len(set(texts))} different QR codes: give one {what}")
        data = texts[0].encode("utf-8")
        if len(data) > MAX_DOCUMENT_BYTES:
            raise HealthCheckError(f"the QR code of the {what} holds more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # ValueError: not UTF-8, not JSON, an integer of > 4,300 digits
        raise HealthCheckError(f"the QR code does not hold the JSON of a {what}") from None
