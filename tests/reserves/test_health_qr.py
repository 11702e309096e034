"""Key-health challenges and responses as QR codes (BBQr type J): what is written reads back with
zxing-cpp, and anything else in front of the camera (a PSBT, two codes, a compressed bomb, a photo
without a code) is refused with a health.error naming what it was."""

import json

import pytest
import zxingcpp
from PIL import Image

from msigvault import Network, Vault
from msigvault.reserves import health, qrcodes
from msigvault.reserves.errors import HealthCheckError
from msigvault.testing.keyholders import TestKeyholder
from msigvault.transport import bbqr
from msigvault.transport import qr as Q

HOLDERS = [TestKeyholder.from_label(f"qr-health-{i}") for i in range(3)]


@pytest.fixture(scope="module")
def vault():
    return Vault.multisig(2, [h.cosigner("wsh") for h in HOLDERS], script="wsh", network=Network.REGTEST)


def test_a_challenge_and_its_response_travel_as_one_qr_code_each(vault, tmp_path):
    challenge = health.issue(vault, date="2026-11-05", index=5)[1]
    qrcodes.write_qr({"challenges": [challenge.to_dict()]}, tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as img:
        (code,) = zxingcpp.read_barcodes(img.convert("L"))
    assert code.text.startswith("B$ZJ0100") or code.text.startswith("B$2J0100")  # one BBQr part, JSON
    read = qrcodes.read_qr([tmp_path / "c.png"], "key-health challenge")
    assert health.Challenge.from_dict(read["challenges"][0]) == challenge
    answer = health.respond(challenge, vault, HOLDERS[1].root)
    qrcodes.write_qr(answer.to_dict(), tmp_path / "r.svg")
    assert (tmp_path / "r.svg").read_bytes().startswith(b"<?xml")
    qrcodes.write_qr(answer.to_dict(), tmp_path / "r.png")
    back = health.Response.from_dict(qrcodes.read_qr([tmp_path / "r.png"], "key-health response"))
    assert back == answer
    rep = health.report(vault, [challenge], [back], as_of="2026-11-06")
    assert [r.status for r in rep.rows] == ["passed"]
    assert qrcodes.is_image(tmp_path / "r.png") and not qrcodes.is_image(tmp_path / "nothing.json")


def test_a_plain_json_code_is_read_too(vault, tmp_path):
    answer = health.respond(health.issue(vault, date="2026-11-05")[0], vault, HOLDERS[0].root)
    Q.qr_png(json.dumps(answer.to_dict()), tmp_path / "plain.png")
    assert qrcodes.read_qr([tmp_path / "plain.png"], "key-health response") == answer.to_dict()


def test_other_codes_are_refused(vault, tmp_path):
    psbt_like = bbqr.bbqr_split(b"psbt\xff" + bytes(40), "P", max_split=1).parts[0]
    Q.qr_png(psbt_like, tmp_path / "psbt.png")
    with pytest.raises(HealthCheckError, match="PSBT .BBQr type P.") as e:
        qrcodes.read_qr([tmp_path / "psbt.png"], "key-health response")
    assert e.value.code == "health.error"
    Q.qr_png("hello", tmp_path / "a.png")
    Q.qr_png("world", tmp_path / "b.png")
    with pytest.raises(HealthCheckError, match="2 different QR codes"):
        qrcodes.read_qr([tmp_path / "a.png", tmp_path / "b.png"], "key-health response")
    with pytest.raises(HealthCheckError, match="does not hold the JSON"):
        qrcodes.read_qr([tmp_path / "a.png"], "key-health response")
    Image.new("L", (200, 200), 255).save(tmp_path / "blank.png")
    with pytest.raises(HealthCheckError, match="no readable QR code"):
        qrcodes.read_qr([tmp_path / "blank.png"], "key-health response")


def test_a_compressed_bomb_is_refused_before_it_is_parsed(tmp_path):
    bomb = b'{"kind": "' + b" " * (qrcodes.MAX_DOCUMENT_BYTES * 4) + b'"}'
    (part,) = bbqr.bbqr_split(bomb, "J", max_split=1).parts  # compresses into one small code
    Q.qr_png(part, tmp_path / "bomb.png")
    with pytest.raises(HealthCheckError, match="do not make one BBQr file"):
        qrcodes.read_qr([tmp_path / "bomb.png"], "key-health response")
    with pytest.raises(HealthCheckError, match="above the QR limit"):
        qrcodes.qr_text({"kind": "x" * (qrcodes.MAX_DOCUMENT_BYTES + 1)})


ONLINE = ("msigvault.backends", "msigvault.coordinator", "sqlalchemy", "alembic", "httpx", "bitcoinlib", "psycopg",
          "msigvault.service", "matplotlib")


def _offline(args, cwd, passphrase):
    """Run ``msigvault ARGS`` in a fresh interpreter and fail if it loaded anything online."""
    import os
    import subprocess
    import sys

    code = ("import sys\nfrom msigvault.cli import main\n"
            f"try:\n    main({[str(a) for a in args]!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            f"bad = [m for m in sys.modules if m.startswith({ONLINE!r})]\nassert not bad, bad\n")
    env = {**os.environ, "MSIGVAULT_PASSPHRASE": passphrase}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_the_keyholders_commands_load_nothing_online(tmp_path):
    """health respond (QR in, QR out) and proof sign run on the air-gapped laptop: no backend,
    no database layer, no HTTP client, no plotting library is imported."""
    from msigvault.testing.cli import run_cli

    def ok(*args, passphrase=None):
        proc = run_cli(*args, cwd=tmp_path, passphrase=passphrase)
        assert proc.returncode == 0, proc.stderr
        return proc

    for name in ("alice", "bob", "carol"):
        ok("key", "new", f"{name}.key", "--skip-backup-check", passphrase=name)
        ok("key", "cosigner", f"{name}.key", "-n", "regtest", "-o", f"{name}.cosigner", passphrase=name)
    ok("vault", "create", "-m", "2", "alice.cosigner", "bob.cosigner", "carol.cosigner", "-n", "regtest",
       "-o", "vault.json")
    ok("vault", "verify", "vault.json", "--key", "alice.key", "--yes", passphrase="alice")
    ok("health", "challenge", "vault.json", "--date", "2026-11-05", "-o", "challenges.json", "--qr", "qr")
    fingerprint = (tmp_path / "alice.cosigner").read_text().strip()[1:9]  # [fingerprint/path]xpub
    mine = tmp_path / "qr" / f"challenge-{fingerprint}.png"
    _offline(["health", "respond", "vault.json", mine, "--key", "alice.key", "--yes", "--qr-out", "alice.png"],
             tmp_path, "alice")
    back = health.Response.from_dict(qrcodes.read_qr([tmp_path / "alice.png"], "key-health response"))
    assert back.fingerprint == fingerprint
    ok("proof", "create", "vault.json", "--message", "Auditor Ltd 2026-11-05 nonce 7f3a", "-o", "proof.psbt")
    _offline(["proof", "sign", "vault.json", "proof.psbt", "--message", "Auditor Ltd 2026-11-05 nonce 7f3a",
              "--key", "alice.key", "--yes", "-o", "alice-proof.psbt"], tmp_path, "alice")
    assert (tmp_path / "alice-proof.psbt").stat().st_size > 0
