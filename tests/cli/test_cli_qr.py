"""PSBTs across the air gap as animated QR, through the CLI: encode, decode (real zxing-cpp
decoder on the PNG frames), and signing straight from the frames."""

import os
import subprocess
import sys

from msigvault import Vault
from msigvault.network import Network
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo
from msigvault.vaultfile import VaultFile


def run(*args, cwd, passphrase=None):
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    if passphrase:
        env["MSIGVAULT_PASSPHRASE"] = passphrase
    proc = subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_qr_round_trip_and_sign_from_frames(tmp_path):
    run("key", "new", "k.key", "--skip-backup-check", cwd=tmp_path, passphrase="pw")
    run("key", "cosigner", "k.key", "-n", "regtest", "-o", "k.cosigner", cwd=tmp_path, passphrase="pw")
    others = [TestKeyholder.from_label(f"qr-{i}").cosigner("wsh") for i in range(2)]
    mine = (tmp_path / "k.cosigner").read_text().strip()
    vault = Vault.multisig(2, [mine, *others], network=Network.REGTEST)
    VaultFile(vault, "qr").save(tmp_path / "vault.json")
    run("vault", "verify", "vault.json", "--key", "k.key", "--yes", cwd=tmp_path, passphrase="pw")
    utxos = [synthetic_utxo(vault, 100_000, index=i) for i in range(8)]
    psbt = vault.create_psbt(utxos, [(bytes.fromhex("0014") + bytes(20), 700_000)], fee_rate=2.0, change_index=0)
    (tmp_path / "spend.psbt").write_bytes(psbt.serialize())
    run("qr", "encode", "spend.psbt", "--animate", "-o", "frames", cwd=tmp_path)
    frames = sorted((tmp_path / "frames").glob("frame-*.png"))
    assert len(frames) > 3 and (tmp_path / "frames" / "animated.gif").exists()
    run("qr", "decode", *frames, "-o", "back.psbt", cwd=tmp_path)
    assert (tmp_path / "back.psbt").read_bytes() == psbt.serialize()
    out = run("psbt", "sign", "vault.json", "-", "--qr-in", "frames", "--key", "k.key", "--yes",
              "-o", "signed.psbt", "--qr", "signed-frames", cwd=tmp_path, passphrase="pw")
    assert "signed 8 input(s)" in out.stdout
    run("qr", "decode", *sorted((tmp_path / "signed-frames").glob("frame-*.png")), "-o", "signed-back.psbt", cwd=tmp_path)
    assert (tmp_path / "signed-back.psbt").read_bytes() == (tmp_path / "signed.psbt").read_bytes()
    out = run("psbt", "sign", "vault.json", "-", "--qr-in", "frames/animated.gif", "--key", "k.key", "--yes",
              "-o", "signed-from-gif.psbt", cwd=tmp_path, passphrase="pw")
    assert (tmp_path / "signed-from-gif.psbt").read_bytes() == (tmp_path / "signed.psbt").read_bytes()
    run("qr", "encode", "-", "--vault", "vault.json", "-o", "vault.png", cwd=tmp_path)
    assert (tmp_path / "vault.png").stat().st_size > 0
