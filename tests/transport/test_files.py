"""PSBT files: binary, base64, hex and UR-frame text, written atomically and read by content."""

import base64
import os

import pytest

from msigvault.fileio import FileExists
from msigvault.transport import TransportError
from msigvault.transport.files import psbt_from_text, read_psbt_file, write_psbt_file
from msigvault.transport.ur import psbt_to_ur_parts

PSBT = bytes.fromhex(
    "70736274ff01009a020000000258e87a21b56daf0c23be8e7070456c336f7cbaa5c8757924f545887bb2abdd7500000000"
    "00ffffffff838d0427d0ec650a68aa46bb0b098aea4422c071b2ca78352a077959d07cea1d0100000000ffffffff0270aa"
    "f00800000000160014d85c2b71d0060b09c9886aeb815e50991dda124d00e1f5050000000016001400aea9a2e5f0f876a5"
    "88df5546e8742d1d87008f000000000000000000"
)


@pytest.mark.parametrize("encoding", ["binary", "base64", "hex"])
def test_round_trip(tmp_path, encoding):
    path = write_psbt_file(PSBT, tmp_path / f"spend.{encoding}", encoding=encoding)
    assert read_psbt_file(path) == PSBT
    raw = path.read_bytes()
    assert raw == {"binary": PSBT, "base64": base64.b64encode(PSBT) + b"\n",
                   "hex": PSBT.hex().encode() + b"\n"}[encoding]
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_existing_file_is_kept_unless_overwrite(tmp_path):
    path = write_psbt_file(PSBT, tmp_path / "a.psbt")
    with pytest.raises(FileExists):
        write_psbt_file(PSBT[:-1] + b"\x01", path)
    assert read_psbt_file(path) == PSBT
    write_psbt_file(PSBT, path, encoding="hex", overwrite=True)
    assert read_psbt_file(path) == PSBT


def test_ur_frames_one_per_line_in_any_order(tmp_path):
    frames = psbt_to_ur_parts(PSBT, 40, extra_parts=3)
    path = tmp_path / "frames.txt"
    path.write_text("\n".join(reversed(frames)) + "\n")
    assert read_psbt_file(path) == PSBT


def test_whitespace_in_text_is_ignored():
    b64 = base64.b64encode(PSBT).decode()
    assert psbt_from_text(" " + b64[:20] + "\n" + b64[20:] + "\n") == PSBT
    assert psbt_from_text(PSBT.hex().upper()) == PSBT


@pytest.mark.parametrize("content,match", [
    (b"\x00\x01\x02\xff", "neither a binary PSBT"),
    (b"hello world", "not a PSBT"),
    (b"cHNidP8!!!", "not valid base64"),
    (b"70736274ffzz", "not valid hex"),
])
def test_wrong_files_say_what_they_are(tmp_path, content, match):
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(TransportError, match=match):
        read_psbt_file(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TransportError, match="no such file"):
        read_psbt_file(tmp_path / "nope.psbt")
    with pytest.raises(TransportError, match="directory"):
        read_psbt_file(tmp_path)


def test_only_psbts_are_written(tmp_path):
    with pytest.raises(TransportError, match="not a binary PSBT"):
        write_psbt_file(b"hello", tmp_path / "x")
    with pytest.raises(TransportError, match="encoding"):
        write_psbt_file(PSBT, tmp_path / "x", encoding="base58")
