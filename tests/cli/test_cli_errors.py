"""Every CLI error a user can hit: exit code 2, one line on stderr, no traceback, a useful message."""

import json
import os
import subprocess
import sys

import pytest

PW = "correct horse"


def run(*args, cwd, passphrase=PW, stdin=None):
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    if passphrase is not None:
        env["MSIGVAULT_PASSPHRASE"] = passphrase
    return subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, input=stdin, timeout=120)


def ok(*args, **kw):
    proc = run(*args, **kw)
    assert proc.returncode == 0, proc.stderr
    return proc


def fails(*args, match, **kw):
    proc = run(*args, **kw)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    for name in ("a", "b", "c", "stranger"):
        ok("key", "new", f"{name}.key", "--skip-backup-check", cwd=d)
        ok("key", "cosigner", f"{name}.key", "-n", "regtest", "-o", f"{name}.cosigner", cwd=d)
    ok("vault", "create", "-m", "2", "a.cosigner", "b.cosigner", "c.cosigner", "-n", "regtest", "-o", "vault.json", cwd=d)
    ok("vault", "create", "-m", "2", "a.cosigner", "b.cosigner", "stranger.cosigner", "-n", "regtest",
       "-o", "other.json", cwd=d)
    for name in ("a", "b", "c"):
        ok("vault", "verify", "vault.json", "--key", f"{name}.key", "--yes", cwd=d)
    ok("vault", "verify", "other.json", "--key", "a.key", "--yes", cwd=d)
    ok("regtest", "init", "chain", cwd=d)
    address = json.loads(ok("vault", "address", "vault.json", "--json", cwd=d).stdout)[0]["address"]
    ok("regtest", "fund", "chain", address, "500000", cwd=d)
    ok("psbt", "create", "vault.json", "--chain", "chain", "--to", "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz:100000",
       "--fee-rate", "2", "-o", "spend.psbt", cwd=d)
    ok("psbt", "sign", "vault.json", "spend.psbt", "--key", "a.key", "--yes", "-o", "a.psbt", cwd=d)
    return d


def test_missing_file(world):
    fails("vault", "show", "nope.json", match="does not exist", cwd=world)
    fails("psbt", "inspect", "vault.json", "nope.psbt", match="nope.psbt: no such file", cwd=world)


def test_wrong_passphrase(world):
    fails("key", "cosigner", "a.key", "-n", "regtest", match="wrong passphrase", cwd=world, passphrase="guess")


def test_empty_passphrase_refused(world):
    fails("key", "new", "x.key", "--skip-backup-check", match="empty passphrase", cwd=world, passphrase="")


def test_wrong_vault(world):
    fails("psbt", "sign", "other.json", "spend.psbt", "--key", "a.key", "--yes", "-o", "x.psbt",
          match="not in the registered vault", cwd=world)


def test_key_not_in_vault(world):
    fails("psbt", "sign", "vault.json", "spend.psbt", "--key", "stranger.key", "--yes", "-o", "x.psbt",
          match="not a cosigner", cwd=world)
    fails("vault", "verify", "vault.json", "--key", "stranger.key", match="not a cosigner", cwd=world)


def test_already_signed_psbt(world):
    fails("psbt", "sign", "vault.json", "a.psbt", "--key", "a.key", "--yes", "-o", "again.psbt",
          match="already signed by", cwd=world)


def test_not_enough_signatures(world):
    line = fails("psbt", "finalize", "vault.json", "a.psbt", "-o", "final.psbt", match="needs 1 more signature", cwd=world)
    assert "still missing" in line


def test_unknown_network(world):
    proc = run("vault", "create", "-m", "2", "a.cosigner", "-n", "moonnet", "-o", "x.json", cwd=world)
    assert proc.returncode == 2 and "moonnet" in proc.stderr and "Traceback" not in proc.stderr


def test_network_mismatch(world):
    fails("vault", "create", "-m", "1", "a.cosigner", "-n", "mainnet", "-o", "x.json",
          match="vault is on mainnet", cwd=world)


def test_output_never_silently_overwritten(world):
    before = (world / "a.psbt").read_bytes()
    fails("psbt", "combine", "vault.json", "a.psbt", "-o", "a.psbt", match="already exists", cwd=world)
    assert (world / "a.psbt").read_bytes() == before


def test_tampered_vault_file(world):
    data = json.loads((world / "vault.json").read_text())
    data["descriptor"] = data["descriptor"].replace("sortedmulti(2,", "sortedmulti(1,").split("#")[0]
    from msigvault.policy import add_checksum

    data["descriptor"] = add_checksum(data["descriptor"])
    (world / "tampered.json").write_text(json.dumps(data))
    fails("vault", "show", "tampered.json", match="does not match the recorded policy id", cwd=world)


def test_garbage_psbt(world):
    (world / "garbage.psbt").write_bytes(b"psbt\xff\x01\x02")
    fails("psbt", "inspect", "vault.json", "garbage.psbt", match="PSBT", cwd=world)


def test_bad_destination(world):
    fails("psbt", "create", "vault.json", "--chain", "chain", "--to", "bc1qnotanaddress:1000", "--fee-rate", "2",
          "-o", "x.psbt", match="address", cwd=world)
    fails("psbt", "create", "vault.json", "--chain", "chain", "--to", "nocolon", "--fee-rate", "2",
          "-o", "x.psbt", match="ADDRESS:AMOUNT", cwd=world)


def test_insufficient_funds(world):
    fails("psbt", "create", "vault.json", "--chain", "chain", "--to",
          "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz:90000000", "--fee-rate", "2", "-o", "x.psbt",
          match="insufficient funds", cwd=world)


def test_private_key_as_cosigner_is_refused_without_echo(world):
    from msigvault.testing.keyholders import TestKeyholder

    tprv = TestKeyholder.from_label("leak").root.to_base58()
    proc = run("vault", "create", "-m", "1", tprv, "-n", "regtest", "-o", "x.json", cwd=world)
    assert proc.returncode == 2 and "private" in proc.stderr and tprv[4:] not in proc.stderr


def test_help_has_examples():
    for args in (["--help"], ["psbt", "sign", "-h"], ["key", "new", "-h"], ["vault", "create", "-h"]):
        proc = run(*args, cwd=".")
        assert proc.returncode == 0 and "msigvault" in proc.stdout
    assert "Example" in run("psbt", "sign", "-h", cwd=".").stdout
