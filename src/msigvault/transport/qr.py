"""QR codes: render with segno, read with zxing-cpp; animated QR for PSBTs too big for one code.

Two animated formats: BC-UR (``ur:crypto-psbt`` fountain frames, :func:`write_animated_qr`) and
BBQr (Coinkite's ``B$`` parts, zlib-compressed, :func:`write_animated_bbqr`). Reading detects which
one the frames are.

UR text is put into QR codes in upper case: every character of an upper-case UR (``A-Z``, ``0-9``,
``:``, ``/``, ``-``) is in the QR alphanumeric set, which packs 5.5 bits per character instead of 8,
so the code is smaller for the same content (BCR-2020-005 recommends it). Decoders accept any case.
BBQr text is upper case by definition and always goes into the QR in alphanumeric mode, every
frame of a series at the same QR version.

Files are written atomically (:func:`msigvault.fileio.write_atomic`).
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Callable

from ..fileio import FileExists, write_atomic
from . import IncompleteTransfer, TransportError
from . import bbqr
from .files import psbt_from_text
from .ur import DEFAULT_MAX_FRAGMENT_LEN, URDecoder, _psbt_bytes, psbt_to_ur_parts, ur_payload_to_psbt

#: Frame file names written by :func:`write_animated_qr`.
FRAME_PATTERN = "frame-{:04d}.png"
GIF_NAME = "animated.gif"
_FRAME_RE = re.compile(r"^frame-[0-9]{4,}\.png$")

#: Largest fragment (bytes) whose UR frame still fits a version-40 QR code at error level L.
MAX_QR_FRAGMENT_LEN = 2000


def _segno():
    try:
        import segno
    except ImportError:  # pragma: no cover - depends on the installation
        raise TransportError("rendering QR codes needs the 'segno' package: install msigvault[qr]") from None
    return segno


def qr_content(data: str) -> str:
    """The text to put in a QR code: UR text upper-cased (QR alphanumeric mode), anything else as is."""
    if not isinstance(data, str):
        raise TransportError(f"QR content must be text, not {type(data).__name__}")
    if not data:
        raise TransportError("QR content cannot be empty")
    if data[:3].lower() == "ur:":
        return data.upper()
    return data


def _make(data: str, error: str, version: "int | None" = None):
    segno = _segno()
    content = qr_content(data)
    if not isinstance(error, str) or error.upper() not in ("L", "M", "Q", "H"):
        raise TransportError(f"QR error correction level must be L, M, Q or H, not {error!r}")
    mode = "alphanumeric" if bbqr.is_bbqr(content) else None
    try:
        return segno.make_qr(content, error=error, version=version, mode=mode, boost_error=False)
    except segno.DataOverflowError:
        raise TransportError(
            f"{len(content)} characters do not fit in one QR code"
            + (f" of version {version}" if version else "")
            + ": use an animated QR (write_animated_qr or write_animated_bbqr, or smaller frames)"
        ) from None
    except ValueError as e:
        raise TransportError(f"cannot make a QR code: {e}") from None


def _check_dims(scale, border) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise TransportError(f"scale must be a whole number of pixels per module (1 or more), not {scale!r}")
    if isinstance(border, bool) or not isinstance(border, int) or border < 0:
        raise TransportError(f"border must be a whole number of modules (0 or more), not {border!r}")


def _render(q, kind: str, scale, border, **kw) -> bytes:
    _check_dims(scale, border)
    buf = io.BytesIO()
    q.save(buf, kind=kind, scale=scale, border=border, **kw)
    return buf.getvalue()


def qr_png(data: str, path, scale: int = 4, *, border: int = 4, error: str = "L",
           overwrite: bool = True) -> Path:
    """Write ``data`` as a PNG QR code (``scale`` pixels per module, ``border`` modules of margin;
    scanners want a border of 4)."""
    return write_atomic(path, _render(_make(data, error), "png", scale, border), overwrite=overwrite)


def qr_svg(data: str, path, scale: int = 4, *, border: int = 4, error: str = "L",
           overwrite: bool = True) -> Path:
    """Write ``data`` as an SVG QR code."""
    svg = _render(_make(data, error), "svg", scale, border, xmldecl=True)
    return write_atomic(path, svg, overwrite=overwrite)


def qr_terminal(data: str, *, border: int = 2, error: str = "L") -> str:
    """The QR code as text for a terminal: Unicode half blocks, two modules per character row.

    Light modules are drawn as blocks, so on a dark-background terminal the code shows dark on
    light, as scanners expect. Print it with no line wrapping.
    """
    q = _make(data, error)
    _check_dims(1, border)
    out = io.StringIO()
    q.terminal(out=out, compact=True, border=border)
    return out.getvalue()


# ------------------------------------------------------------------------------- animated QR


def write_animated_qr(psbt_bytes, directory, *, max_fragment_len: int = DEFAULT_MAX_FRAGMENT_LEN,
                      extra_parts: "int | None" = None, gif: bool = True, scale: int = 4,
                      border: int = 4, frame_ms: int = 250, ur_type: str = "crypto-psbt",
                      overwrite: bool = False, progress: "Callable[[int, int], None] | None" = None) -> "list[Path]":
    """Write a PSBT as an animated QR: numbered PNG frames ``frame-0001.png`` ... and, with
    ``gif=True``, ``animated.gif`` playing them in a loop (``frame_ms`` per frame).

    The frames are the ``ur:crypto-psbt`` parts: each fragment once, then ``extra_parts`` fountain
    parts (default: half as many again), which let a scanner that missed frames finish quickly.
    Returns the PNG paths in order, followed by the GIF path if one was written.
    ``progress(done, total)`` is called after each frame (for a progress bar).

    ``overwrite=False`` refuses a directory that already holds frames (frames of two PSBTs must
    never mix); ``overwrite=True`` replaces them and removes leftover frames of the old set.
    """
    _check_dims(scale, border)
    _check_frame_ms(frame_ms)
    if isinstance(max_fragment_len, int) and max_fragment_len > MAX_QR_FRAGMENT_LEN:
        raise TransportError(
            f"max_fragment_len {max_fragment_len} is too large: one QR code holds a frame of at most "
            f"{MAX_QR_FRAGMENT_LEN} bytes, and 100-400 bytes scan far more reliably"
        )
    parts = psbt_to_ur_parts(psbt_bytes, max_fragment_len, extra_parts=0, ur_type=ur_type)
    if len(parts) > 1:
        if extra_parts is None:
            extra_parts = math.ceil(len(parts) / 2)
        parts = psbt_to_ur_parts(psbt_bytes, max_fragment_len, extra_parts=extra_parts, ur_type=ur_type)
    return _write_frames(parts, directory, None, gif=gif, scale=scale, border=border, frame_ms=frame_ms,
                         overwrite=overwrite, progress=progress)


def write_animated_bbqr(data, directory, *, max_version: int = bbqr.DEFAULT_MAX_VERSION,
                        encoding: str = "Z", file_type: str = "P", gif: bool = True, scale: int = 4,
                        border: int = 4, frame_ms: int = 250, overwrite: bool = False,
                        progress: "Callable[[int, int], None] | None" = None) -> "list[Path]":
    """Write a PSBT (or, with another ``file_type``, any file) as BBQr frames: ``frame-0001.png``
    ... in part order and, with ``gif=True``, ``animated.gif`` playing them in a loop.

    The parts are as few as fit QR codes of at most ``max_version`` (1-40); every frame is drawn
    at the same version, in alphanumeric mode, error level L. ``encoding`` ``Z`` (default)
    compresses, falling back to base32 (``2``) when that is not smaller; ``H`` is hex. Unlike UR
    there are no extra frames: the scanner needs every part, in any order. Directory rules as in
    :func:`write_animated_qr`.
    """
    _check_dims(scale, border)
    _check_frame_ms(frame_ms)
    payload = _psbt_bytes(data) if file_type == "P" else data
    split = bbqr.bbqr_split(payload, file_type, encoding=encoding, max_version=max_version)
    return _write_frames(split.parts, directory, split.version, gif=gif, scale=scale, border=border,
                         frame_ms=frame_ms, overwrite=overwrite, progress=progress)


def animated_frame_count(data: bytes, *, fmt: str = "ur", max_fragment_len: int = DEFAULT_MAX_FRAGMENT_LEN,
                         max_version: int = bbqr.DEFAULT_MAX_VERSION) -> int:
    """How many frames :func:`write_animated_qr` (``fmt="ur"``, default extras) or
    :func:`write_animated_bbqr` (``fmt="bbqr"``) would write for ``data``, without rendering."""
    if fmt == "bbqr":
        return len(bbqr.bbqr_split(data, "P", encoding="Z", max_version=max_version).parts)
    fragments = len(psbt_to_ur_parts(data, max_fragment_len, extra_parts=0))
    return fragments if fragments == 1 else fragments + math.ceil(fragments / 2)


def _check_frame_ms(frame_ms) -> None:
    if isinstance(frame_ms, bool) or not isinstance(frame_ms, int) or not 20 <= frame_ms <= 60_000:
        raise TransportError(f"frame_ms must be a whole number of milliseconds from 20 to 60000, not {frame_ms!r}")


def _write_frames(parts, directory, version: "int | None", *, gif: bool, scale: int, border: int,
                  frame_ms: int, overwrite: bool, progress=None) -> "list[Path]":
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TransportError(f"cannot create the frame directory {directory}: {e.strerror or e}") from None
    existing = sorted(p for p in directory.iterdir() if _FRAME_RE.fullmatch(p.name) or p.name == GIF_NAME)
    if existing and not overwrite:
        raise FileExists(
            f"{directory} already holds QR frames ({existing[0].name}, ...): choose an empty directory, "
            "or pass overwrite=True to replace them"
        )
    paths, images = [], []
    for i, text in enumerate(parts, 1):
        png = _render(_make(text, "L", version), "png", scale, border)
        paths.append(write_atomic(directory / FRAME_PATTERN.format(i), png, overwrite=True))
        if gif:
            images.append(png)
        if progress is not None:
            progress(i, len(parts))
    keep = {p.name for p in paths}
    for old in existing:  # leftovers of a longer previous animation must not stay behind
        if old.name not in keep and old.name != GIF_NAME:
            old.unlink()
    if gif:
        paths.append(_write_gif(images, directory / GIF_NAME, frame_ms))
    elif (directory / GIF_NAME).exists():
        (directory / GIF_NAME).unlink()
    return paths


def _pil():
    try:
        from PIL import Image, ImageSequence, UnidentifiedImageError
    except ImportError:  # pragma: no cover - depends on the installation
        raise TransportError("reading or animating QR images needs the 'pillow' package: install msigvault[qr]") from None
    return Image, ImageSequence, UnidentifiedImageError


def _write_gif(pngs: "list[bytes]", path: Path, frame_ms: int) -> Path:
    Image, _, _ = _pil()
    frames = [Image.open(io.BytesIO(p)).convert("L") for p in pngs]
    size = (max(f.width for f in frames), max(f.height for f in frames))
    padded = []
    for f in frames:  # QR versions can differ between frames: centre each on a white canvas
        if f.size != size:
            canvas = Image.new("L", size, 255)
            canvas.paste(f, ((size[0] - f.width) // 2, (size[1] - f.height) // 2))
            f = canvas
        padded.append(f.convert("P"))
    buf = io.BytesIO()
    padded[0].save(buf, format="GIF", save_all=True, append_images=padded[1:], duration=frame_ms,
                   loop=0, optimize=False, disposal=1)
    return write_atomic(path, buf.getvalue(), overwrite=True)


# ------------------------------------------------------------------------------- reading


def _zxing():
    try:
        import zxingcpp
    except ImportError:  # pragma: no cover - depends on the installation
        raise TransportError("reading QR codes needs the 'zxing-cpp' package: install msigvault[qr]") from None
    return zxingcpp


def _image_texts(path, Image, ImageSequence, UnidentifiedImageError, zxingcpp) -> "list[str]":
    """Texts of the QR codes in one image file (every frame of an animated GIF)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            frames = [f.convert("L") for f in ImageSequence.Iterator(img)]
    except FileNotFoundError:
        raise TransportError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise TransportError(f"{path} is not an image msigvault can read ({type(e).__name__})") from None
    texts = []
    for frame in frames:
        try:
            results = zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
        except Exception as e:  # zxing-cpp reports unusable images with various exception types
            raise TransportError(f"{path}: the QR reader cannot use this image ({type(e).__name__})") from None
        texts.extend(r.text for r in results if r.valid and r.text)
    return texts


def _iter_images(paths):
    if isinstance(paths, (str, Path)):
        paths = [paths]
    try:
        paths = list(paths)
    except TypeError:
        raise TransportError(f"expected image paths, not {type(paths).__name__}") from None
    Image, ImageSequence, UnidentifiedImageError = _pil()
    zxingcpp = _zxing()
    for path in paths:
        yield Path(path), _image_texts(path, Image, ImageSequence, UnidentifiedImageError, zxingcpp)


def read_qr_images(paths, *, skip_unreadable: bool = False) -> "list[str]":
    """The text of every QR code in the images (PNG, JPEG, GIF with all its frames, ...), in order.

    An image in which no QR code can be read raises :class:`TransportError` naming the file, unless
    ``skip_unreadable=True`` (then it is passed over; a missed animation frame is normal).
    """
    texts = []
    for path, found in _iter_images(paths):
        if not found and not skip_unreadable:
            raise TransportError(
                f"{path}: no readable QR code in this image; take the picture again closer, sharper "
                "and without glare"
            )
        texts.extend(found)
    return texts


def decode_psbt_from_images(paths, *, max_size: int = bbqr.DEFAULT_MAX_SIZE) -> bytes:
    """The binary PSBT shown in QR images: the frames of a ``ur:crypto-psbt`` / ``ur:psbt`` animation
    (any order, some missing, repeats fine), the parts of a BBQr series (``B$``: any order,
    repeats fine, all needed), or one QR code holding a base64 or hex PSBT. The format is detected
    from the codes; ``max_size`` bounds a decompressed BBQr file.

    Images are read in order and reading stops as soon as the animation's PSBT is complete; images
    without a readable code are passed over (a blurred frame is normal when filming a screen).
    """
    decoder = URDecoder()
    parts = bbqr.BBQrDecoder(max_size)
    others: "set[str]" = set()
    images = 0
    for _, texts in _iter_images(paths):
        images += 1
        for text in texts:
            if text[:3].lower() == "ur:":
                decoder.receive_part(text)
            elif bbqr.is_bbqr(text):
                parts.receive_part(text)
            else:
                others.add(text.strip())
        _check_one_kind(decoder.ur_type is not None, parts.expected_part_count is not None, bool(others))
        if decoder.is_complete:
            return ur_payload_to_psbt(*decoder.result)
        if parts.is_complete:
            return bbqr.bbqr_file_to_psbt(parts.result)
    if decoder.ur_type is not None:
        raise IncompleteTransfer(
            f"the {images} image(s) hold {decoder.received_part_count} of the "
            f"{decoder.expected_part_count} fragments of this PSBT (progress "
            f"{decoder.progress:.0%}): capture more frames of the animated QR"
        )
    if parts.expected_part_count is not None:
        missing = parts.missing_parts
        shown = ", ".join(str(i + 1) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise IncompleteTransfer(
            f"the {images} image(s) hold {parts.received_part_count} of the {parts.expected_part_count} "
            f"BBQr parts of this PSBT (missing part {shown}, counting from 1): capture every frame "
            "of the animated QR"
        )
    if not others:
        raise TransportError(f"no readable QR code in the {images} image(s) given")
    if len(others) != 1:
        raise TransportError(
            f"the images hold {len(others)} different QR codes that are not UR frames: "
            "give one QR code holding one PSBT"
        )
    return psbt_from_text(others.pop())


def _check_one_kind(ur: bool, bbqr_parts: bool, other: bool) -> None:
    if ur + bbqr_parts + other > 1:
        kinds = [name for name, seen in (("UR frames", ur), ("BBQr parts", bbqr_parts),
                                         ("other QR codes", other)) if seen]
        raise TransportError(
            f"the images mix {' and '.join(kinds)}: give only the frames of one animated QR"
        )
