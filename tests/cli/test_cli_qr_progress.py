"""Long QR work says up front how many frames are coming, and warns with better alternatives."""

import os
import subprocess
import sys

from msigvault.cli import qr as cli_qr
from msigvault.testing.samples import example_psbt
from msigvault.transport.qr import animated_frame_count


def test_estimate_is_printed_before_rendering_and_matches(tmp_path):
    _, psbt = example_psbt()
    (tmp_path / "p.psbt").write_bytes(psbt.serialize())
    proc = subprocess.run([sys.executable, "-m", "msigvault", "qr", "encode", "p.psbt", "--animate",
                           "--fragment", "60", "-o", "frames"], cwd=tmp_path, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items()}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = animated_frame_count(psbt.serialize(), max_fragment_len=60)
    assert f": {expected:,} frames" in proc.stderr
    assert len(list((tmp_path / "frames").glob("frame-*.png"))) == expected
    assert "warning" not in proc.stderr


def test_many_frames_warn_and_name_the_alternatives(capsys):
    data = bytes(1000)
    cli_qr._announce(cli_qr.MANY_FRAMES + 1, data, "ur", 40)
    err = capsys.readouterr().err
    assert "warning" in err and "carry the PSBT file" in err and "--format bbqr (compressed: 40 frames)" in err
    cli_qr._announce(cli_qr.MANY_FRAMES, data, "ur", 40)
    assert "warning" not in capsys.readouterr().err


def test_frame_count_for_bbqr_and_ur():
    _, psbt = example_psbt(inputs=3)
    data = psbt.serialize()
    assert animated_frame_count(data, fmt="bbqr", max_version=5) >= 1
    assert animated_frame_count(data, max_fragment_len=10**6) == 1
