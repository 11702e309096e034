"""BBQr (coinkite/BBQr): the spec's tables and a real scan as vectors, splitting rules, hostile
parts and zip bombs, and a 50-input PSBT through real PNG frames read by zxing-cpp."""

import base64
import json
import math
import random
import tracemalloc
import zlib
from pathlib import Path

import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from msigvault import Network, Vault
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo
from msigvault.transport import ForeignFrameError, IncompleteTransfer, TransportError
from msigvault.transport.bbqr import (
    BBQrDecoder, HEADER_LEN, MAX_PARTS, QR_ALNUM_CAPACITY_L, bbqr_join, bbqr_split, bbqr_to_psbt,
    parse_header, plan_split, psbt_to_bbqr_parts, qr_capacity,
)
from msigvault.transport.files import read_psbt_file
from msigvault.transport.qr import (
    decode_psbt_from_images, qr_content, qr_png, read_qr_images, write_animated_bbqr,
    write_animated_qr,
)
from msigvault.transport.ur import psbt_to_ur_parts

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "transport" / "bbqr"
SPEC = json.loads((VECTORS / "bbqr-spec.json").read_text())


def real_scan() -> "list[str]":
    return [line.strip() for line in (VECTORS / "real-scan.txt").read_text().splitlines() if line.strip()]


def raw_deflate(data: bytes, wbits: int = -10) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return z.compress(data) + z.flush()


def z_parts(packed: bytes, file_type: str = "P") -> "list[str]":
    """Hand-built Z parts around arbitrary deflate bytes (split on 8-character boundaries)."""
    body = base64.b32encode(packed).decode().rstrip("=")
    per = 4000
    chunks = [body[i:i + per] for i in range(0, len(body), per)]
    n = len(chunks)
    return [f"B$Z{file_type}{n:02d}{i:02d}{c}" if n < 10 else f"B$Z{file_type}{base36(n)}{base36(i)}{c}"
            for i, c in enumerate(chunks)]


def base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return digits[n // 36] + digits[n % 36]


@pytest.fixture(scope="module")
def vault():
    holders = [TestKeyholder.from_label(x) for x in "abc"]
    return Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network=Network.REGTEST)


@pytest.fixture(scope="module")
def big_psbt(vault) -> bytes:
    """A 50-input 2-of-3 wsh PSBT (about 20 kB), as in test_qr.py."""
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


# ------------------------------------------------------------------------------ spec vectors


def test_real_scan_is_the_byte_exact_copy():
    import hashlib

    raw = (VECTORS / "real-scan.txt").read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()
    assert blob == "7957d3f4aa3988bf15fb3b529ed32ed5f9ddd264"  # git blob id named in the vector's source


def test_real_scan_from_the_reference_repository():
    lines = real_scan()
    assert len(lines) == 26 and len(set(lines)) == 8  # a loop filmed about three times
    result = bbqr_join(lines)
    # what coinkite/BBQr python/tests/test_join.py asserts
    assert result.file_type == "U"
    assert b"Zlib compressed" in result.data and b"PSBT" in result.data
    assert result.encoding == "Z"
    # any order, any repeats
    rnd = random.Random(5)
    for _ in range(3):
        shuffled = rnd.sample(lines, len(lines))
        assert bbqr_join(shuffled) == result
    assert bbqr_join(sorted(set(lines))) == result


def test_real_scan_needs_every_part():
    lines = [x for x in real_scan() if x[6:8] != "05"]
    decoder = BBQrDecoder()
    for line in lines:
        decoder.receive_part(line)
    assert not decoder.is_complete and decoder.missing_parts == [5]
    assert decoder.progress == 7 / 8
    with pytest.raises(IncompleteTransfer, match=r"7 of 8 parts seen \(missing 5\)"):
        decoder.result
    with pytest.raises(TransportError, match="not a PSBT"):
        bbqr_to_psbt(real_scan())


def test_capacity_table_is_the_specs():
    for row in SPEC["size_estimates"]:
        assert qr_capacity(row["version"]) == row["chars"], row
        assert (row["chars"] - HEADER_LEN) // 2 == row["payload_hex_bytes"], row
        side = 17 + 4 * row["version"]
        assert row["pixels"] == f"{side}x{side}"


def test_capacity_table_matches_segno_for_every_version():
    # the table is ISO 18004's: the capacity fits in alphanumeric mode at level L, one more does not
    for version, cap in enumerate(QR_ALNUM_CAPACITY_L, 1):
        q = segno.make_qr("B$" + "A" * (cap - 2), error="L", version=version, mode="alphanumeric",
                          boost_error=False)
        assert q.version == version and q.mode == "alphanumeric"
        with pytest.raises(segno.DataOverflowError):
            segno.make_qr("A" * (cap + 1), error="L", version=version, mode="alphanumeric", boost_error=False)


def test_largest_files_of_the_spec():
    big = SPEC["largest_file"]
    cap = qr_capacity(big["version"]) - HEADER_LEN
    assert big["parts"] == MAX_PARTS
    assert MAX_PARTS * (cap // 2) == big["hex_bytes"]
    assert MAX_PARTS * (cap // 8 * 5) == big["base32_bytes"]
    rnd = random.Random(1)
    data = rnd.randbytes(big["hex_bytes"])
    split = bbqr_split(data, "T", encoding="H", min_version=40)
    assert (split.version, len(split.parts)) == (40, MAX_PARTS)
    assert {len(p) for p in split.parts} == {qr_capacity(40)}
    assert bbqr_join(split.parts[::-1]).data == data
    with pytest.raises(TransportError, match="do not fit"):
        bbqr_split(data + b"x", "T", encoding="H")
    data = rnd.randbytes(big["base32_bytes"])
    split = bbqr_split(data, "T", encoding="2", min_version=40)
    assert (split.version, len(split.parts)) == (40, MAX_PARTS)
    assert bbqr_join(split.parts).data == data


def test_the_specs_example_headers():
    ex = SPEC["header_example"]
    data = b"psbt\xff" + random.Random(2).randbytes(ex["file_bytes"] - 5)
    hexed = data.hex().upper()
    parts, at = [], 0
    for p in ex["parts"]:
        parts.append(p["header"] + hexed[at:at + p["hex_digits"]])
        at += p["hex_digits"]
    assert at == len(hexed)
    assert all(len(p) <= qr_capacity(ex["version"]) for p in parts)
    assert bbqr_to_psbt([parts[2], parts[0], parts[1]]) == data
    # our splitter: the same three parts at version 27, balanced instead of a runt
    split = bbqr_split(data, "P", encoding="H", min_version=27, max_version=27)
    assert [p[:8] for p in split.parts] == [p["header"] for p in ex["parts"]]
    lengths = [len(p) for p in split.parts]
    assert max(lengths) - min(lengths) <= 2 * len(lengths)  # no runt: 1442, 1442, 1440


def test_file_type_and_encoding_codes_are_the_specs():
    from msigvault.transport.bbqr import ENCODINGS, FILE_TYPES

    assert set(ENCODINGS) == set(SPEC["encodings"])
    assert set(FILE_TYPES) == set(SPEC["file_types"]) | set(SPEC["reference_extra_file_types"])


# ------------------------------------------------------------------------------ splitting


def check_split_rules(split, data_len=None):
    """Every rule of the spec, checked on the output."""
    parts = split.parts
    n = len(parts)
    assert all(p[:6] == parts[0][:6] for p in parts)
    assert parts[0][:4] == f"B${split.encoding}{split.file_type}"
    assert [int(p[4:6], 36) for p in parts] == [n] * n
    assert [int(p[6:8], 36) for p in parts] == list(range(n))
    bodies = [p[8:] for p in parts]
    mod = 2 if split.encoding == "H" else 8
    assert all(len(b) == len(bodies[0]) for b in bodies[:-1])
    assert len(bodies[-1]) <= len(bodies[0])
    assert n == 1 or all(len(b) % mod == 0 for b in bodies[:-1])
    assert all(len(p) <= qr_capacity(split.version) for p in parts)
    assert all(segno.make_qr(p).mode == "alphanumeric" for p in parts[:2])


@pytest.mark.parametrize("encoding", ["H", "2", "Z"])
@pytest.mark.parametrize("size", [1, 10, 100, 2000, 10_000, 50_000, 4000, 4411, 5489])
@pytest.mark.parametrize("max_version", [11, 29, 40])
@pytest.mark.parametrize("low_entropy", [True, False])
def test_loopback(encoding, size, max_version, low_entropy):
    # the parameters of coinkite/BBQr python/tests/test_loopback.py
    data = b"A" * size if low_entropy else random.Random(size).randbytes(size)
    split = bbqr_split(data, "P", encoding=encoding, max_version=max_version)
    check_split_rules(split)
    assert split.version <= max_version
    if encoding == "Z":  # base32 instead when deflate does not make it smaller (random bytes)
        assert split.encoding == ("Z" if len(raw_deflate(data)) < size else "2")
        assert split.encoding == ("Z" if low_entropy and size >= 10 else "2")
    else:
        assert split.encoding == encoding
    shuffled = random.Random(1).sample(split.parts, len(split.parts))
    assert bbqr_join(shuffled + shuffled[:2]) .data == data


@pytest.mark.parametrize("encoding", ["H", "2", "Z"])
@pytest.mark.parametrize("size", range(1060, 1080))
@pytest.mark.parametrize("low_entropy", [True, False])
def test_version_27_edge(encoding, size, low_entropy):
    # coinkite/BBQr python/tests/test_loopback.py test_edge27: one version-27 code holds 1062 bytes as hex
    data = b"A" * size if low_entropy else random.Random(size).randbytes(size)
    split = bbqr_split(data, "T", encoding=encoding, max_split=2, min_version=27, max_version=27)
    assert split.version == 27
    if encoding == "H":
        assert len(split.parts) == (1 if size <= 1062 else 2)
    else:
        assert len(split.parts) == 1
        if encoding == "Z" and low_entropy:
            assert len(split.parts[0]) < 100
    assert bbqr_join(split.parts).data == data


@given(st.integers(1, 60_000), st.sampled_from("H2Z"), st.integers(1, 40), st.integers(1, 40))
def test_fewest_parts_then_lowest_version(length, encoding, a, b):
    low, high = min(a, b), max(a, b)
    mod = 2 if encoding == "H" else 8

    def parts_needed(v):
        cap = qr_capacity(v) - HEADER_LEN
        return 1 if length <= cap else math.ceil(length / (cap - cap % mod))

    counts = {v: parts_needed(v) for v in range(low, high + 1) if parts_needed(v) <= MAX_PARTS}
    if not counts:
        with pytest.raises(TransportError, match="do not fit"):
            plan_split(length, encoding, min_version=low, max_version=high)
        return
    version, count, per = plan_split(length, encoding, min_version=low, max_version=high)
    assert count == min(counts.values())
    assert version == min(v for v, c in counts.items() if c == count)
    assert per * count >= length and per * (count - 1) < length
    assert per + HEADER_LEN <= qr_capacity(version)


@given(st.binary(min_size=1, max_size=5000), st.sampled_from("H2Z"), st.integers(1, 40),
       st.sampled_from("PTJCUBX"), st.randoms(use_true_random=False))
def test_any_bytes_round_trip_in_any_order(data, encoding, max_version, file_type, rnd):
    split = bbqr_split(data, file_type, encoding=encoding, min_version=1, max_version=max_version)
    check_split_rules(split)
    frames = split.parts + tuple(rnd.choices(split.parts, k=2))
    result = bbqr_join(rnd.sample(frames, len(frames)))
    assert (result.file_type, result.data) == (file_type, data)


def test_min_split_and_bad_arguments():
    data = random.Random(3).randbytes(10_000)
    for n in range(2, 10):
        split = bbqr_split(data, "T", encoding="2", min_split=n)
        assert len(split.parts) >= n
        assert bbqr_join(split.parts).data == data
    for kwargs in ({"max_version": 41}, {"min_version": 0}, {"max_split": 0}, {"min_split": 3, "max_split": 2},
                   {"encoding": "B"}, {"max_version": True}):
        with pytest.raises(TransportError):
            bbqr_split(data, "T", **kwargs)
    with pytest.raises(TransportError, match="file type"):
        bbqr_split(data, "Q")
    with pytest.raises(TransportError, match="empty"):
        bbqr_split(b"", "B")
    with pytest.raises(TransportError, match="bytes or text"):
        bbqr_split(123, "B")
    assert bbqr_join(bbqr_split("naïve text", "U").parts).data == "naïve text".encode()


def test_psbt_parts(small_psbt, big_psbt):
    parts = psbt_to_bbqr_parts(small_psbt)
    assert len(parts) == 3 and parts[0].startswith("B$ZP0300")  # default: version-11 codes at most
    assert bbqr_to_psbt(parts) == small_psbt
    parts = psbt_to_bbqr_parts(small_psbt, max_version=40)
    assert len(parts) == 1 and parts[0].startswith("B$ZP0100")
    assert bbqr_to_psbt(parts) == small_psbt
    parts = psbt_to_bbqr_parts(big_psbt, max_version=11)
    assert all(len(p) <= qr_capacity(11) for p in parts)
    assert bbqr_to_psbt(parts[::-1]) == big_psbt
    with pytest.raises(TransportError, match="not a binary PSBT"):
        psbt_to_bbqr_parts(b"hello")
    not_psbt = bbqr_split(b"hello world", "P").parts
    with pytest.raises(TransportError, match="does not start with 'psbt'"):
        bbqr_to_psbt(not_psbt)


# ------------------------------------------------------------------------------ hostile parts


@pytest.mark.parametrize("text, message", [
    ("UR:CRYPTO-PSBT/ABC", "does not start with 'B\\$'"),
    ("B$ZP01", "8-character header"),
    ("B$QP0100AAAA", "encoding 'Q' is unknown"),
    ("B$ZQ0100AAAA", "file type 'Q' is reserved"),
    ("B$Zp0100AAAA", "file type 'p'"),
    ("B$ZP0a00AAAA", "base-36"),
    ("B$ZP0000AAAA", "0 parts"),
    ("B$ZP0202AAAA", "part 2 of 2"),
    ("B$ZP0100", "carries no data"),
    ("B$HP0100ABC", "whole number of bytes"),
    ("B$HP0100abcd", "outside 0-9 A-F"),
    ("B$2P0100ABC", "whole number of bytes"),
    ("B$2P0100AB18", "outside A-Z 2-7"),
    ("B$2P0200ABCDEFG", "not a multiple of 8"),
    ("B$HP0100" + "AB" * 2145, "cannot come from one QR code"),
])
def test_malformed_parts_say_what_is_wrong(text, message):
    with pytest.raises(TransportError, match=message):
        BBQrDecoder().receive_part(text)


def test_inconsistent_headers_are_refused_and_the_scan_goes_on(big_psbt):
    parts = psbt_to_bbqr_parts(big_psbt, max_version=11)
    n = len(parts)
    decoder = BBQrDecoder()
    assert decoder.receive_part(parts[0]) is True
    assert decoder.receive_part(parts[0]) is False  # a repeat is fine
    body = parts[1][8:]
    for text, what in ((f"B$2P{base36(n)}01{body}", "encoding '2'"),
                       (f"B$ZT{base36(n)}01{body}", "file type 'T'"),
                       (f"B$ZP{base36(n + 1)}01{body}", f"part count {n + 1}"),
                       (parts[1][:8] + body[:-8], "characters but the other parts have"),
                       (parts[0][:8] + body, "seen twice with different contents"),
                       (parts[-1][:8] + body + "AAAAAAAA", "never longer")):
        with pytest.raises(ForeignFrameError, match=what):
            decoder.receive_part(text)
    assert decoder.received_part_count == 1  # nothing was taken from the refused parts
    for p in parts[1:]:
        decoder.receive_part(p)
    assert bbqr_to_psbt(parts) == decoder.result.data == big_psbt


def test_last_part_seen_first_then_a_shorter_part():
    split = bbqr_split(random.Random(4).randbytes(3000), "B", encoding="H", max_version=11)
    last = split.parts[-1]
    decoder = BBQrDecoder()
    decoder.receive_part(last)
    longer_last_body = split.parts[0][8:]
    short = split.parts[0][:8] + longer_last_body[:len(last) - 8 - 2]
    with pytest.raises(ForeignFrameError, match="fewer than the last part's"):
        decoder.receive_part(short)


def test_announced_size_above_the_limit_is_refused_on_the_first_part():
    part = "B$HPZZ00" + "AB" * 2144  # 1295 parts of 2144 bytes: 2.7 MB
    with pytest.raises(TransportError, match="at least 2774336 bytes"):
        BBQrDecoder(max_size=1_000_000).receive_part(part)
    assert BBQrDecoder().receive_part(part) is True  # within the default limit


def test_stray_base32_bits_truncated_and_trailing_deflate_data_are_refused():
    with pytest.raises(TransportError, match="stray bits"):
        bbqr_join(["B$2B0100AB"])  # 'B' leaves non-zero bits after the one byte
    assert bbqr_join(["B$2B0100AA"]).data == b"\x00"
    packed = raw_deflate(b"hello hello hello hello")
    with pytest.raises(TransportError, match="ends early"):
        bbqr_join(z_parts(packed[:-3]))
    with pytest.raises(TransportError, match="bytes after its end"):
        bbqr_join(z_parts(packed + b"\x00\x00"))
    with pytest.raises(TransportError, match="not valid deflate"):
        bbqr_join(z_parts(b"\xff" * 10))


def inflate_in_a_1k_window(packed: bytes) -> bytes:
    """Inflate one output byte at a time, so every match must come from zlib's own 1 KiB window
    (what an embedded decoder such as a Coldcard's has), not from the output buffer."""
    d = zlib.decompressobj(wbits=-10)
    out, pending = bytearray(), packed
    while not d.eof:
        out += d.decompress(pending, 1)
        pending = d.unconsumed_tail
    return bytes(out)


def test_z_is_raw_deflate_with_a_1k_window(big_psbt):
    split = bbqr_split(big_psbt, "P", encoding="Z", max_version=40)
    body = "".join(p[8:] for p in split.parts)
    packed = base64.b32decode(body + "=" * (-len(body) % 8))
    # the spec's settings: raw deflate (no zlib or gzip header), wbits 10
    with pytest.raises(zlib.error):
        zlib.decompress(packed, wbits=15)
    assert inflate_in_a_1k_window(packed) == big_psbt
    # the check has teeth: a stream made with a 32 KiB window (a match 4 KiB back) fails it
    block = random.Random(7).randbytes(4096)
    wide = raw_deflate(block + block, wbits=-15)
    with pytest.raises(zlib.error, match="too far back"):
        inflate_in_a_1k_window(wide)
    # msigvault's decoder is lenient there (its memory bound is max_size, not the window)
    assert bbqr_join(z_parts(wide)).data == block + block


def test_zip_bomb_is_cut_off_without_inflating_it():
    z = zlib.compressobj(9, zlib.DEFLATED, -10)
    zeros = bytes(1 << 20)
    packed = b"".join(z.compress(zeros) for _ in range(64)) + z.flush()  # 64 MiB of zeros
    parts = z_parts(packed)
    assert len(packed) < 100_000 and len(parts) < 40
    tracemalloc.start()
    try:
        with pytest.raises(TransportError, match="decompresses to more than 16777216 bytes"):
            bbqr_join(parts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * 1024 * 1024  # the 16 MiB limit and change, not the 64 MiB of the bomb
    with pytest.raises(TransportError, match="more than 1000 bytes"):
        bbqr_join(bbqr_split(bytes(1001), "B").parts, max_size=1000)
    assert bbqr_join(bbqr_split(bytes(1000), "B").parts, max_size=1000).data == bytes(1000)


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


@given(st.lists(st.text(alphabet=_ALNUM, max_size=60).map(lambda t: "B$" + t), min_size=1, max_size=6))
def test_arbitrary_text_only_raises_transport_errors(texts):
    decoder = BBQrDecoder(max_size=10_000)
    for text in texts:
        try:
            decoder.receive_part(text)
        except TransportError:
            pass
    try:
        decoder.result
    except TransportError:
        pass


@given(st.binary(min_size=1, max_size=600), st.sampled_from("H2Z"), st.data())
def test_one_changed_character_is_refused_or_decodes_cleanly(data, encoding, draw):
    parts = list(bbqr_split(data, "B", encoding=encoding, min_version=1, max_version=3).parts)
    i = draw.draw(st.integers(0, len(parts) - 1))
    j = draw.draw(st.integers(0, len(parts[i]) - 1))
    parts[i] = parts[i][:j] + draw.draw(st.sampled_from(_ALNUM)) + parts[i][j + 1:]
    try:
        result = bbqr_join(parts, max_size=10_000)
    except TransportError:
        return
    assert isinstance(result.data, bytes) and 0 < len(result.data) <= 10_000


def test_header_parsing():
    h = parse_header("B$ZPZZ1Axx")
    assert (h.encoding, h.file_type, h.total, h.index) == ("Z", "P", 1295, 46)


# ------------------------------------------------------------------------------ QR frames


def test_fifty_input_psbt_through_bbqr_png_frames(big_psbt, tmp_path, record_property):
    paths = write_animated_bbqr(big_psbt, tmp_path / "frames", max_version=11, scale=2)
    pngs, gif = paths[:-1], paths[-1]
    assert gif.name == "animated.gif"
    expected = bbqr_split(big_psbt, "P", max_version=11)
    assert expected.encoding == "Z" and len(pngs) == len(expected.parts)
    # every frame is the same QR version (61 modules + 2 x 4 border, 2 px per module)
    assert {Image.open(p).size for p in pngs} == {((17 + 4 * expected.version + 8) * 2,) * 2}
    texts = read_qr_images(pngs)
    assert tuple(texts) == expected.parts  # zxing-cpp reads back exactly what was encoded

    # the camera sees the frames out of order and one of them twice
    rnd = random.Random(50)
    seen = rnd.sample(pngs, len(pngs))
    seen.insert(3, seen[7])
    assert decode_psbt_from_images(seen) == big_psbt
    assert decode_psbt_from_images([gif]) == big_psbt
    with pytest.raises(IncompleteTransfer, match=r"missing part 3, counting from 1"):
        decode_psbt_from_images([p for i, p in enumerate(pngs) if i != 2])

    ur_frames = len(psbt_to_ur_parts(big_psbt, 200))  # UR's default fragment is a version-11 code too
    record_property("bbqr_50_inputs", {"psbt_bytes": len(big_psbt), "bbqr_frames": len(pngs),
                                       "ur_fragments": ur_frames, "version": expected.version})
    assert len(pngs) * 2 < ur_frames  # compression: under half the frames


def test_single_bbqr_code_and_alphanumeric_mode(small_psbt, tmp_path):
    [part] = psbt_to_bbqr_parts(small_psbt, max_version=40)
    assert qr_content(part) == part
    assert segno.make_qr(part, error="L").mode == "alphanumeric"
    png = qr_png(part, tmp_path / "one.png")
    assert read_qr_images([png]) == [part]
    assert decode_psbt_from_images([png]) == small_psbt


def test_mixed_formats_are_refused(small_psbt, big_psbt, tmp_path):
    ur = qr_png(psbt_to_ur_parts(small_psbt, 2000)[0], tmp_path / "ur.png", scale=2)
    bb = qr_png(psbt_to_bbqr_parts(big_psbt)[0], tmp_path / "bb.png", scale=2)
    with pytest.raises(TransportError, match="mix UR frames and BBQr parts"):
        decode_psbt_from_images([bb, ur])
    hello = qr_png("hello", tmp_path / "hello.png")
    with pytest.raises(TransportError, match="mix BBQr parts and other QR codes"):
        decode_psbt_from_images([bb, hello])


def test_bbqr_frames_of_two_psbts_are_not_mixed(small_psbt, big_psbt, tmp_path):
    a = psbt_to_bbqr_parts(big_psbt, max_version=11)
    other = big_psbt[:10] + bytes([big_psbt[10] ^ 1]) + big_psbt[11:]
    b = psbt_to_bbqr_parts(other, max_version=11)
    frames = [qr_png(a[0], tmp_path / "a.png", scale=2), qr_png(b[0], tmp_path / "b.png", scale=2)]
    assert a[0] != b[0]
    with pytest.raises(ForeignFrameError):
        decode_psbt_from_images(frames)


def test_bbqr_frame_directory_rules(small_psbt, big_psbt, tmp_path):
    first = write_animated_bbqr(big_psbt, tmp_path, max_version=8, scale=1)
    from msigvault.fileio import FileExists

    with pytest.raises(FileExists):
        write_animated_bbqr(small_psbt, tmp_path)
    second = write_animated_bbqr(small_psbt, tmp_path, overwrite=True, gif=False, scale=1)
    assert sorted(tmp_path.iterdir()) == sorted(second) and len(second) < len(first)
    assert decode_psbt_from_images(second) == small_psbt
    with pytest.raises(TransportError, match="max_version"):
        write_animated_bbqr(small_psbt, tmp_path / "x", max_version=0)
    with pytest.raises(TransportError, match="frame_ms"):
        write_animated_bbqr(small_psbt, tmp_path / "x", frame_ms=5)
    # UR and BBQr write the same frame names, so one directory never holds both
    with pytest.raises(FileExists):
        write_animated_qr(small_psbt, tmp_path)


def test_psbt_file_of_bbqr_lines(big_psbt, tmp_path):
    parts = psbt_to_bbqr_parts(big_psbt, max_version=20)
    f = tmp_path / "scan.txt"
    f.write_text("\n".join(parts[::-1] + parts[:1]) + "\n")
    assert read_psbt_file(f) == big_psbt
    f.write_text("\n".join(parts[1:]) + "\n")
    with pytest.raises(IncompleteTransfer, match="scan.txt: the BBQr transfer is incomplete"):
        read_psbt_file(f)
    f.write_text("\n".join(real_scan()) + "\n")
    with pytest.raises(TransportError, match="not a PSBT"):
        read_psbt_file(f)
