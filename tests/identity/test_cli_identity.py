"""msigvault identity ... and msigvault envelope ...: a site and a coordinator exchange a PSBT."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from msigvault.cli import cli
from msigvault.keys.keystore import MIN_SCRYPT_N, Keystore
from msigvault.network import Network
from msigvault.testing.keyholders import TestKeyholder

KEY_PW = "keystore pass phrase"
ID_PW = "identity pass phrase"
ENV = {"MSIGVAULT_PASSPHRASE": KEY_PW, "MSIGVAULT_IDENTITY_PASSPHRASE": ID_PW}


def run(*args, code=0):
    result = CliRunner(env=ENV).invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def err(*args):
    out = run(*args, "--json", code=2).output
    return json.loads(out)["error"]["code"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    ks = Keystore.create(d / "alice.key", KEY_PW, kdf_cost=MIN_SCRYPT_N)
    alice = ks.cosigner(Network.REGTEST, KEY_PW)
    others = [str(TestKeyholder.from_label(n).cosigner()) for n in ("bob", "carol")]
    run("vault", "create", "-m", "2", str(alice), *others, "-n", "regtest", "-o", d / "vault.json")
    for name, role in (("alice-site", "keyholder-site"), ("coordinator", "coordinator"), ("eve", "keyholder-site")):
        run("identity", "new", d / f"{name}.identity", "--name", name, "--role", role, "--kdf-cost", MIN_SCRYPT_N)
    run("identity", "export-record", d / "alice-site.identity", "-n", "regtest", "--key", d / "alice.key",
        "--vault", d / "vault.json", "-o", d / "alice-site.record")
    run("identity", "export-record", d / "coordinator.identity", "-n", "regtest", "-o", d / "coordinator.record")
    return d


def test_new_show_and_file_mode(setup):
    info = json.loads(run("identity", "show", setup / "alice-site.identity", "--json").output)
    assert info["name"] == "alice-site" and info["role"] == "keyholder-site" and len(info["id"]) == 32
    assert (setup / "alice-site.identity").stat().st_mode & 0o777 == 0o600
    assert err("identity", "new", setup / "alice-site.identity", "--name", "x", "--role", "auditor") == "cli.usage"


def test_records_verify_and_a_site_record_needs_the_vault(setup):
    out = json.loads(run("identity", "verify-record", setup / "alice-site.record", "--vault", setup / "vault.json",
                         "--json").output)
    assert out["ok"] and out["role"] == "keyholder-site" and out["cosigner"].startswith("[")
    assert json.loads(run("identity", "verify-record", setup / "coordinator.record", "--json").output)["ok"]
    assert err("identity", "verify-record", setup / "alice-site.record") == "cli.usage"
    assert err("identity", "verify-record", setup / "coordinator.record", "-n", "testnet") == "identity.record"


def test_a_site_record_signed_by_a_key_outside_the_vault_is_refused(setup):
    bob = Keystore.create(setup / "stranger.key", KEY_PW, kdf_cost=MIN_SCRYPT_N)
    assert bob.fingerprint
    assert err("identity", "export-record", setup / "eve.identity", "-n", "regtest", "--key", setup / "stranger.key",
               "--vault", setup / "vault.json", "-o", setup / "eve.record") == "cli.usage"
    # a record edited to name alice's cosigner does not verify
    rec = json.loads((setup / "alice-site.record").read_bytes())
    rec["name"] = "eve"
    (setup / "edited.record").write_bytes(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    assert err("identity", "verify-record", setup / "edited.record", "--vault", setup / "vault.json") == "identity.record"


def test_seal_and_open_round_trip_then_replay_is_refused(setup):
    (setup / "spend.psbt").write_bytes(b"psbt\xff" + bytes(500))
    run("envelope", "seal", setup / "spend.psbt", "--from", setup / "alice-site.identity", "--to",
        setup / "coordinator.record", "--session", "s-1", "--seq", "1", "--type", "partial-signature",
        "-o", setup / "a.msve")
    out = json.loads(run("envelope", "open", setup / "a.msve", "--as", setup / "coordinator.identity", "--from",
                         setup / "alice-site.record", "--vault", setup / "vault.json", "-o", setup / "got.psbt",
                         "--json").output)
    assert (setup / "got.psbt").read_bytes() == (setup / "spend.psbt").read_bytes()
    assert out["sender"] == "alice-site" and out["sequence"] == 1 and out["content_type"] == "partial-signature"
    assert err("envelope", "open", setup / "a.msve", "--as", setup / "coordinator.identity", "--from",
               setup / "alice-site.record", "--vault", setup / "vault.json", "-o", setup / "again.psbt") \
        == "envelope.replayed"
    assert not (setup / "again.psbt").exists()


def test_open_refuses_the_wrong_recipient_and_tampering(setup):
    (setup / "p").write_bytes(b"payload")
    run("envelope", "seal", setup / "p", "--from", setup / "coordinator.identity", "--to",
        setup / "alice-site.record", "--vault", setup / "vault.json", "--session", "s-2", "--seq", "1",
        "--type", "psbt", "-o", setup / "b.msve")
    assert err("envelope", "open", setup / "b.msve", "--as", setup / "eve.identity", "--from",
               setup / "coordinator.record", "-o", setup / "x") == "envelope.wrong-recipient"
    data = bytearray((setup / "b.msve").read_bytes())
    data[-5] ^= 1
    (setup / "c.msve").write_bytes(bytes(data))
    assert err("envelope", "open", setup / "c.msve", "--as", setup / "alice-site.identity", "--from",
               setup / "coordinator.record", "-o", setup / "x") == "envelope.tampered"
    run("envelope", "open", setup / "b.msve", "--as", setup / "alice-site.identity", "--from",
        setup / "coordinator.record", "-o", setup / "x")


def test_help_stays_lazy():
    code = ("import sys; from msigvault.cli import main; sys.argv=['msigvault','--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in sys.modules if m.startswith('msigvault.identity') or 'hpke' in m]\n"
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_an_envelope_goes_through_bbqr_parts_on_the_command_line(setup):
    import random

    (setup / "big.psbt").write_bytes(random.Random(3).randbytes(4000))
    out = json.loads(run("envelope", "seal", setup / "big.psbt", "--from", setup / "alice-site.identity", "--to",
                         setup / "coordinator.record", "--session", "s-9", "--seq", "1", "--type", "psbt",
                         "-o", setup / "big.msve", "--bbqr", setup / "big.bbqr", "--json").output)
    lines = (setup / "big.bbqr").read_text().split()
    assert out["bbqr_parts"] == len(lines) > 1 and all(line.startswith("B$") for line in lines)
    (setup / "shuffled.bbqr").write_text("\n".join(reversed(lines)) + "\n")
    run("envelope", "open", setup / "shuffled.bbqr", "--as", setup / "coordinator.identity", "--from",
        setup / "alice-site.record", "--vault", setup / "vault.json", "-o", setup / "big.out")
    assert (setup / "big.out").read_bytes() == (setup / "big.psbt").read_bytes()
    assert err("envelope", "open", setup / "shuffled.bbqr", "--as", setup / "coordinator.identity", "--from",
               setup / "alice-site.record", "--vault", setup / "vault.json", "-o", setup / "big2.out") \
        == "envelope.replayed"


def test_oversized_files_are_refused_before_they_are_read(setup):
    from msigvault.identity.envelope import MAX_ENVELOPE

    with open(setup / "huge.msve", "wb") as f:
        f.truncate(2 * MAX_ENVELOPE + 5000)  # sparse: costs no disk
    assert err("envelope", "open", setup / "huge.msve", "--as", setup / "coordinator.identity", "--from",
               setup / "alice-site.record", "--vault", setup / "vault.json", "-o", setup / "h") == "envelope.too-large"
    (setup / "huge.record").write_bytes(b"{" * 10_000)
    assert err("identity", "verify-record", setup / "huge.record") == "identity.record"


def test_a_site_record_verifies_against_a_cosigner_file(setup):
    from msigvault.vaultfile import load_vault_file

    vault = load_vault_file(setup / "vault.json").vault
    record = json.loads((setup / "alice-site.record").read_bytes())
    (setup / "alice.cosigner").write_text(record["cosigner"] + "\n")
    assert json.loads(run("identity", "verify-record", setup / "alice-site.record", "--cosigner",
                          setup / "alice.cosigner", "--json").output)["ok"]
    other = str([c for c in vault.cosigners if str(c) != record["cosigner"]][0])
    (setup / "other.cosigner").write_text(other + "\n")
    assert err("identity", "verify-record", setup / "alice-site.record", "--cosigner",
               setup / "other.cosigner") == "identity.record"
