"""QR rendering (segno) and reading with the real zxing-cpp decoder: nothing is mocked or skipped."""

import base64
import random
import time

import pytest
import segno
from PIL import Image

from msigvault import Network, Vault
from msigvault.fileio import FileExists
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo
from msigvault.transport import ForeignFrameError, IncompleteTransfer, TransportError
from msigvault.transport.qr import (
    decode_psbt_from_images, qr_content, qr_png, qr_svg, qr_terminal, read_qr_images,
    write_animated_qr,
)
from msigvault.transport.ur import encode_ur, psbt_to_ur_parts, ur_to_psbt


@pytest.fixture(scope="module")
def vault():
    holders = [TestKeyholder.from_label(x) for x in "abc"]
    return Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network=Network.REGTEST)


@pytest.fixture(scope="module")
def big_psbt(vault) -> bytes:
    """A 50-input 2-of-3 wsh PSBT (about 20 kB)."""
    utxos = [synthetic_utxo(vault, 100_000, index=i, seed=str(i)) for i in range(50)]
    psbt = vault.create_psbt(utxos, [(bytes.fromhex("0014") + bytes(20), 4_000_000)], fee_rate=1.0,
                             change_index=0)
    return psbt.serialize()


@pytest.fixture(scope="module")
def small_psbt(vault) -> bytes:
    utxo = synthetic_utxo(vault, 100_000, index=0, seed="small")
    psbt = vault.create_psbt([utxo], [(bytes.fromhex("0014") + bytes(20), 40_000)], fee_rate=1.0,
                             change_index=0)
    return psbt.serialize()


def test_fifty_input_psbt_through_animated_qr_with_lost_frames(big_psbt, tmp_path, record_property):
    assert len(big_psbt) > 15_000
    t0 = time.perf_counter()
    paths = write_animated_qr(big_psbt, tmp_path / "frames", max_fragment_len=400, scale=2)
    t1 = time.perf_counter()
    pngs, gif = paths[:-1], paths[-1]
    assert gif.name == "animated.gif" and all(p.suffix == ".png" for p in pngs)
    seq_len = len(psbt_to_ur_parts(big_psbt, 400))
    assert len(pngs) == seq_len + (seq_len + 1) // 2  # each fragment once, then half as many fountain parts

    # every frame is a real QR code holding an upper-case UR in alphanumeric mode
    texts = read_qr_images(pngs[:3])
    assert all(t.startswith(f"UR:CRYPTO-PSBT/{i}-{seq_len}/") for i, t in enumerate(texts, 1))

    # The keyholder's camera misses every sixth frame and sees the rest out of order, some twice.
    # The change output's position is random (creator.py), so which frames suffice varies from run
    # to run; like a real scan, keep watching the loop (missing other frames) until it completes.
    rnd = random.Random(50)
    first_loop = [p for i, p in enumerate(pngs) if i % 6 != 1]
    first_loop += rnd.sample(first_loop, 5)
    rnd.shuffle(first_loop)
    second_loop = [p for i, p in enumerate(pngs) if i % 6 != 4]
    t2 = time.perf_counter()
    assert decode_psbt_from_images(first_loop + second_loop) == big_psbt
    t3 = time.perf_counter()
    # the GIF holds every frame
    assert decode_psbt_from_images([gif]) == big_psbt
    t4 = time.perf_counter()
    record_property("qr_50_inputs", {
        "psbt_bytes": len(big_psbt), "fragments": seq_len, "frames": len(pngs),
        "frame_px": Image.open(pngs[0]).size[0], "render_s": round(t1 - t0, 2),
        "decode_s": round(t3 - t2, 2), "decode_gif_s": round(t4 - t3, 2)})
    # every frame the camera missed in the first loop was a fragment or a fountain part; the
    # decoder never needs more than the frames shown in two loops


def test_too_few_frames_say_how_many_are_missing(big_psbt, tmp_path):
    parts = psbt_to_ur_parts(big_psbt, 1000)
    paths = [qr_png(text, tmp_path / f"{i}.png", scale=2) for i, text in enumerate(parts[:5])]
    with pytest.raises(IncompleteTransfer, match=r"hold 5 of the 21 fragments"):
        decode_psbt_from_images(paths)
    with pytest.raises(TransportError, match="too large"):
        write_animated_qr(big_psbt, tmp_path / "x", max_fragment_len=3000)


def test_frames_of_two_psbts_are_not_mixed(big_psbt, small_psbt, tmp_path):
    a = psbt_to_ur_parts(big_psbt, 300)
    b = psbt_to_ur_parts(small_psbt, 100)
    frames = [qr_png(a[0], tmp_path / "a.png", scale=2), qr_png(b[1], tmp_path / "b.png", scale=2)]
    with pytest.raises(ForeignFrameError, match="different transfer"):
        decode_psbt_from_images(frames)


def test_frame_directory_is_not_overwritten_by_accident(small_psbt, tmp_path):
    first = write_animated_qr(small_psbt, tmp_path, max_fragment_len=40, scale=2)
    with pytest.raises(FileExists):
        write_animated_qr(small_psbt, tmp_path, max_fragment_len=200)
    second = write_animated_qr(small_psbt, tmp_path, max_fragment_len=200, overwrite=True, gif=False,
                               scale=2)
    # the old, longer animation left nothing behind
    assert sorted(tmp_path.iterdir()) == sorted(second)
    assert len(second) < len(first)
    assert decode_psbt_from_images(second) == small_psbt


def test_single_qr_png_svg_and_terminal(small_psbt, tmp_path):
    ur = psbt_to_ur_parts(small_psbt, max_fragment_len=2000)
    assert len(ur) == 1 and ur[0].startswith("ur:crypto-psbt/")
    png = qr_png(ur[0], tmp_path / "psbt.png")
    assert read_qr_images([png]) == [ur[0].upper()]
    assert decode_psbt_from_images(png) == small_psbt
    assert ur_to_psbt(read_qr_images(png)) == small_psbt
    svg = qr_svg(ur[0], tmp_path / "psbt.svg")
    assert svg.read_text().lstrip().startswith("<?xml")
    text = qr_terminal(ur[0])
    assert set(text) <= set(" \n█▀▄")
    assert len(text.splitlines()[0]) == segno.make_qr(ur[0].upper(), error="l").symbol_size(border=2)[0]


def test_ur_goes_into_the_qr_in_upper_case_alphanumeric_mode():
    ur = encode_ur("crypto-psbt", b"\x45psbt\xff")
    assert qr_content(ur) == ur.upper()
    assert segno.make_qr(qr_content(ur)).mode == "alphanumeric"
    assert qr_content("cHNidP8B") == "cHNidP8B"  # other text is left alone


def test_single_qr_with_base64_or_hex_psbt(small_psbt, tmp_path):
    b64 = qr_png(base64.b64encode(small_psbt).decode(), tmp_path / "b64.png")
    assert decode_psbt_from_images([b64]) == small_psbt
    hexpng = qr_png(small_psbt.hex(), tmp_path / "hex.png", scale=2)
    assert decode_psbt_from_images([hexpng, hexpng]) == small_psbt


def test_images_without_a_psbt(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    with pytest.raises(TransportError, match="no readable QR code"):
        read_qr_images([blank])
    with pytest.raises(TransportError, match="no readable QR code"):
        decode_psbt_from_images([blank])
    assert read_qr_images([blank], skip_unreadable=True) == []
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    with pytest.raises(TransportError, match="not an image"):
        read_qr_images([not_image])
    with pytest.raises(TransportError, match="no such image"):
        read_qr_images([tmp_path / "missing.png"])
    hello = qr_png("hello", tmp_path / "hello.png")
    with pytest.raises(TransportError, match="not a PSBT"):
        decode_psbt_from_images([hello])


def test_too_much_for_one_qr_code():
    with pytest.raises(TransportError, match="do not fit in one QR code"):
        qr_terminal("ur:bytes/" + "ab" * 3000)


@pytest.mark.parametrize("kwargs", [{"scale": 0}, {"scale": "4"}, {"border": -1}, {"frame_ms": 0},
                                    {"max_fragment_len": 0}, {"extra_parts": -1}])
def test_bad_rendering_options_are_refused_before_writing(small_psbt, tmp_path, kwargs):
    with pytest.raises(TransportError):
        write_animated_qr(small_psbt, tmp_path / "f", **kwargs)
    assert not any((tmp_path / "f").glob("frame-*.png")) if (tmp_path / "f").exists() else True
    with pytest.raises(TransportError):
        qr_png("hello", tmp_path / "x.png", error="Z")
