"""BBQr through the CLI: qr encode --format bbqr, qr decode detecting the format, and
psbt sign --qr-in / --qr --qr-format bbqr, with the real zxing-cpp decoder on the PNG frames."""

import json
import os
import random
import subprocess
import sys

from msigvault import Vault
from msigvault.network import Network
from msigvault.psbt.psbt import Psbt
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo
from msigvault.transport.bbqr import bbqr_join, bbqr_split
from msigvault.transport.qr import read_qr_images
from msigvault.vaultfile import VaultFile


def run(*args, cwd, passphrase=None, ok=True):
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    if passphrase:
        env["MSIGVAULT_PASSPHRASE"] = passphrase
    proc = subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    return proc


def frames_in(directory):
    return sorted(directory.glob("frame-*.png"))


def test_bbqr_encode_decode_and_sign_from_frames(tmp_path):
    run("key", "new", "k.key", "--skip-backup-check", cwd=tmp_path, passphrase="pw")
    run("key", "cosigner", "k.key", "-n", "regtest", "-o", "k.cosigner", cwd=tmp_path, passphrase="pw")
    others = [TestKeyholder.from_label(f"bbqr-{i}").cosigner("wsh") for i in range(2)]
    mine = (tmp_path / "k.cosigner").read_text().strip()
    vault = Vault.multisig(2, [mine, *others], network=Network.REGTEST)
    VaultFile(vault, "bbqr").save(tmp_path / "vault.json")
    run("vault", "verify", "vault.json", "--key", "k.key", "--yes", cwd=tmp_path, passphrase="pw")
    utxos = [synthetic_utxo(vault, 100_000, index=i) for i in range(12)]
    psbt = vault.create_psbt(utxos, [(bytes.fromhex("0014") + bytes(20), 700_000)], fee_rate=2.0,
                             change_index=0).serialize()
    (tmp_path / "spend.psbt").write_bytes(psbt)

    out = run("qr", "encode", "spend.psbt", "--animate", "--format", "bbqr", "-o", "frames", "--json",
              cwd=tmp_path)
    assert json.loads(out.stdout)["format"] == "bbqr"
    frames = frames_in(tmp_path / "frames")
    expected = bbqr_split(psbt, "P", max_version=11).parts
    assert len(frames) == len(expected) > 1 and (tmp_path / "frames" / "animated.gif").exists()
    assert read_qr_images(frames) == list(expected)

    # decode detects BBQr; frames out of order, one seen twice
    shuffled = random.Random(9).sample(frames, len(frames))
    run("qr", "decode", *shuffled, shuffled[0], "-o", "back.psbt", cwd=tmp_path)
    assert (tmp_path / "back.psbt").read_bytes() == psbt

    # the keyholder signs straight from the BBQr frames and answers in BBQr
    out = run("psbt", "sign", "vault.json", "-", "--qr-in", "frames", "--key", "k.key", "--yes",
              "-o", "signed.psbt", "--qr", "signed-frames", "--qr-format", "bbqr", cwd=tmp_path,
              passphrase="pw")
    assert f"signed {Psbt.parse(psbt).input_count} input(s)" in out.stdout
    signed_frames = frames_in(tmp_path / "signed-frames")
    assert all(t.startswith("B$ZP") for t in read_qr_images(signed_frames[:2]))
    run("qr", "decode", *signed_frames, "-o", "signed-back.psbt", cwd=tmp_path)
    assert (tmp_path / "signed-back.psbt").read_bytes() == (tmp_path / "signed.psbt").read_bytes()

    # --qr without --qr-format stays UR
    run("psbt", "sign", "vault.json", "-", "--qr-in", "frames/animated.gif", "--key", "k.key", "--yes",
        "-o", "signed2.psbt", "--qr", "ur-frames", cwd=tmp_path, passphrase="pw")
    assert read_qr_images(frames_in(tmp_path / "ur-frames")[:1])[0].startswith("UR:CRYPTO-PSBT/")
    assert (tmp_path / "signed2.psbt").read_bytes() == (tmp_path / "signed.psbt").read_bytes()

    # a text file of BBQr parts (as scanners save them) is a PSBT file too: transcode it to UR
    (tmp_path / "scan.txt").write_text("\n".join(reversed(expected)) + "\n")
    run("qr", "encode", "scan.txt", "--animate", "-o", "from-scan", cwd=tmp_path)
    run("qr", "decode", *frames_in(tmp_path / "from-scan"), "-o", "from-scan.psbt", cwd=tmp_path)
    assert (tmp_path / "from-scan.psbt").read_bytes() == psbt

    # the vault descriptor as one BBQr code of UTF-8 text
    run("qr", "encode", "-", "--vault", "vault.json", "--format", "bbqr", "-o", "vault.png", cwd=tmp_path)
    [text] = read_qr_images([tmp_path / "vault.png"])
    result = bbqr_join([text])
    assert result.file_type == "U" and result.data.decode() == vault.descriptor()


def test_bbqr_single_code_and_option_errors(tmp_path):
    vault = Vault.multisig(2, [TestKeyholder.from_label(f"one-{i}").cosigner("wsh") for i in range(3)],
                           network=Network.REGTEST)
    utxo = synthetic_utxo(vault, 100_000, index=0)
    psbt = vault.create_psbt([utxo], [(bytes.fromhex("0014") + bytes(20), 40_000)], fee_rate=2.0,
                             change_index=0).serialize()
    (tmp_path / "one.psbt").write_bytes(psbt)
    out = run("qr", "encode", "one.psbt", "--format", "bbqr", "-o", "one.png", "--json", cwd=tmp_path)
    text = json.loads(out.stdout)["bbqr"]
    assert text.startswith("B$ZP0100") and read_qr_images([tmp_path / "one.png"]) == [text]
    run("qr", "decode", "one.png", "-o", "one-back.psbt", cwd=tmp_path)
    assert (tmp_path / "one-back.psbt").read_bytes() == psbt

    err = run("qr", "encode", "one.psbt", "--animate", "--format", "bbqr", "--fragment", "100", "-o", "f",
              cwd=tmp_path, ok=False).stderr
    assert "--max-version" in err
    err = run("qr", "encode", "one.psbt", "--animate", "--max-version", "20", "-o", "f", cwd=tmp_path,
              ok=False).stderr
    assert "--format bbqr" in err
    VaultFile(vault, "one").save(tmp_path / "vault.json")
    err = run("psbt", "sign", "vault.json", "one.psbt", "--key", "none.key", "-o", "s.psbt",
              "--qr-format", "bbqr", cwd=tmp_path, ok=False).stderr
    assert "give --qr DIR too" in err
    assert not (tmp_path / "f").exists() and not (tmp_path / "s.psbt").exists()
