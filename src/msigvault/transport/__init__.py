"""Moving PSBTs and descriptors across an air gap: files, Blockchain Commons UR, animated QR.

Modules:

- :mod:`msigvault.transport.bytewords` -- BCR-2020-012 Bytewords (standard, uri, minimal) + CRC32
- :mod:`msigvault.transport.fountain` -- the BC-UR fountain code (Luby transform, Xoshiro256**)
- :mod:`msigvault.transport.ur` -- BCR-2020-005 Uniform Resources: single- and multi-part URs,
  ``ur:crypto-psbt`` / ``ur:psbt``, ``ur:crypto-output`` and ``ur:crypto-account``
- :mod:`msigvault.transport.registry` -- the CBOR registry types (descriptors, HD keys, accounts)
- :mod:`msigvault.transport.bbqr` -- Coinkite's BBQr (``B$`` parts: hex, base32, zlib + base32)
- :mod:`msigvault.transport.qr` -- QR rendering (segno) and reading (zxing-cpp), animated QR frames
- :mod:`msigvault.transport.files` -- PSBT files as binary, base64 or hex

The names below are imported lazily: ``import msigvault.transport`` loads neither cbor2 nor segno.
"""

from __future__ import annotations

from ..errors import MsigvaultError


class TransportError(MsigvaultError):
    """Data carried across the air gap (UR text, QR frame, PSBT file) is malformed or incomplete."""

    code = "transport.invalid"


class ForeignFrameError(TransportError):
    """A UR frame or BBQr part belongs to a different transfer than the one being collected."""

    code = "transport.foreign-frame"


class IncompleteTransfer(TransportError):
    """The result of a multi-part transfer was asked for before every part arrived."""

    code = "transport.incomplete"


_EXPORTS = {
    "encode_ur": "ur",
    "decode_ur": "ur",
    "UREncoder": "ur",
    "URDecoder": "ur",
    "psbt_to_ur_parts": "ur",
    "ur_to_psbt": "ur",
    "descriptor_to_ur": "ur",
    "ur_to_descriptor": "ur",
    "account_to_ur": "ur",
    "ur_to_account": "ur",
    "qr_png": "qr",
    "qr_svg": "qr",
    "qr_terminal": "qr",
    "write_animated_qr": "qr",
    "write_animated_bbqr": "qr",
    "bbqr_split": "bbqr",
    "bbqr_join": "bbqr",
    "bbqr_to_psbt": "bbqr",
    "psbt_to_bbqr_parts": "bbqr",
    "BBQrDecoder": "bbqr",
    "read_qr_images": "qr",
    "decode_psbt_from_images": "qr",
    "write_psbt_file": "files",
    "read_psbt_file": "files",
}

__all__ = sorted(_EXPORTS) + ["TransportError", "ForeignFrameError", "IncompleteTransfer"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'msigvault.transport' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
