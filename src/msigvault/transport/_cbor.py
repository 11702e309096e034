"""The two CBOR operations the transport needs, on top of cbor2, with our errors."""

from __future__ import annotations

import io

from . import TransportError


def _cbor2():
    try:
        import cbor2
    except ImportError:  # pragma: no cover - depends on the installation
        raise TransportError(
            "reading or writing UR / QR data needs the 'cbor2' package (a core dependency): reinstall msigvault"
        ) from None
    return cbor2


def dumps(obj) -> bytes:
    """Encode ``obj`` (ints, bytes, bools, lists, dicts with keys in the order wanted, CBORTag)."""
    return _cbor2().dumps(obj)


def tag(number: int, value):
    return _cbor2().CBORTag(number, value)


def is_tag(obj) -> bool:
    return isinstance(obj, _cbor2().CBORTag)


def loads(data: bytes, what: str):
    """Decode exactly one CBOR item that fills ``data``; any problem is a TransportError."""
    cbor2 = _cbor2()
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(fp).decode()
    except RecursionError:
        raise TransportError(f"{what} is not valid CBOR: it is nested too deeply") from None
    except Exception as e:  # cbor2 raises CBORDecodeError, ValueError, TypeError, OverflowError...
        raise TransportError(f"{what} is not valid CBOR ({type(e).__name__}): the data is corrupt") from None
    if fp.tell() != len(data):
        raise TransportError(
            f"{what} has {len(data) - fp.tell()} unexpected bytes after its CBOR item: the data is corrupt"
        )
    return value
