"""Every CLI error a user can hit: exit code 2, one line on stderr, no traceback, a useful message;
with --json, {"error": {"code": ..., "message": ..., fields}} on stdout instead (docs/errors.md)."""

import json

import pytest

from msigvault.testing.cli import run_cli

PW = "correct horse"


def run(*args, cwd, passphrase=PW, stdin=None):
    return run_cli(*args, cwd=cwd, passphrase=passphrase, stdin=stdin)


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


def fails_json(*args, code, **kw):
    """Run with --json: exit 2, nothing on stderr, one JSON error on stdout with ``code``; return it."""
    proc = run(*args, "--json", **kw)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr == "", proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == code, error
    assert error["message"] and "\n" not in error["message"], error
    return error


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
    assert fails_json("vault", "show", "nope.json", code="vaultfile.invalid", cwd=world)["path"] == "nope.json"
    assert fails_json("psbt", "inspect", "vault.json", "nope.psbt", code="transport.invalid", cwd=world)["path"] == "nope.psbt"


def test_json_error_is_the_same_error_as_the_text_one(world):
    line = fails("vault", "show", "nope.json", match="does not exist", cwd=world)
    error = fails_json("vault", "show", "nope.json", code="vaultfile.invalid", cwd=world)
    assert line == f"error: {error['message']}"


def test_json_usage_errors_click_finds(world):
    error = fails_json("vault", "show", "--no-such-option", code="cli.usage", cwd=world)
    assert "--no-such-option" in error["message"]
    error = fails_json("psbt", "sign", "vault.json", code="cli.usage", cwd=world)  # arguments missing
    assert "PSBT" in error["message"] or "Missing" in error["message"]
    # without --json click's own usage text on stderr, still exit 2
    proc = run("vault", "show", "--no-such-option", cwd=world)
    assert proc.returncode == 2 and proc.stdout == "" and "No such option" in proc.stderr


def test_json_after_double_dash_is_not_the_option(world):
    proc = run("vault", "show", "--", "--json", cwd=world)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.startswith("error: ")


def test_wrong_passphrase(world):
    fails("key", "cosigner", "a.key", "-n", "regtest", match="wrong passphrase", cwd=world, passphrase="guess")
    error = fails_json("key", "cosigner", "a.key", "-n", "regtest", code="keystore.wrong-passphrase", cwd=world,
                       passphrase="guess")
    assert error["path"] == "a.key" and len(error["fingerprint"]) == 8
    assert "guess" not in json.dumps(error)


def test_empty_passphrase_refused(world):
    fails("key", "new", "x.key", "--skip-backup-check", match="empty passphrase", cwd=world, passphrase="")


def test_wrong_vault(world):
    fails("psbt", "sign", "other.json", "spend.psbt", "--key", "a.key", "--yes", "-o", "x.psbt",
          match="not in the registered vault", cwd=world)
    error = fails_json("psbt", "sign", "other.json", "spend.psbt", "--key", "a.key", "--yes", "-o", "x.psbt",
                       code="signer.foreign-key", cwd=world)
    assert error["field"] == "PSBT_GLOBAL_XPUB"
    assert not (world / "x.psbt").exists()


def test_key_not_in_vault(world):
    fails("psbt", "sign", "vault.json", "spend.psbt", "--key", "stranger.key", "--yes", "-o", "x.psbt",
          match="not a cosigner", cwd=world)
    fails("vault", "verify", "vault.json", "--key", "stranger.key", match="not a cosigner", cwd=world)
    error = fails_json("psbt", "sign", "vault.json", "spend.psbt", "--key", "stranger.key", "--yes", "-o", "x.psbt",
                       code="signer.registration", cwd=world)
    stranger = json.loads(ok("key", "info", "stranger.key", "--json", cwd=world).stdout)
    assert error["fingerprint"] == stranger["fingerprint"]


def test_already_signed_psbt(world):
    fails("psbt", "sign", "vault.json", "a.psbt", "--key", "a.key", "--yes", "-o", "again.psbt",
          match="already signed by", cwd=world)


def test_not_enough_signatures(world):
    line = fails("psbt", "finalize", "vault.json", "a.psbt", "-o", "final.psbt", match="needs 1 more signature", cwd=world)
    assert "still missing" in line
    error = fails_json("psbt", "finalize", "vault.json", "a.psbt", "-o", "final.psbt",
                       code="finalize.not-enough-signatures", cwd=world)
    assert (error["input"], error["limit"]) == (0, 2)


def test_unknown_network(world):
    proc = run("vault", "create", "-m", "2", "a.cosigner", "-n", "moonnet", "-o", "x.json", cwd=world)
    assert proc.returncode == 2 and "moonnet" in proc.stderr and "Traceback" not in proc.stderr


def test_network_mismatch(world):
    fails("vault", "create", "-m", "1", "a.cosigner", "-n", "mainnet", "-o", "x.json",
          match="vault is on mainnet", cwd=world)


def test_output_never_silently_overwritten(world):
    before = (world / "a.psbt").read_bytes()
    fails("psbt", "combine", "vault.json", "a.psbt", "-o", "a.psbt", match="already exists", cwd=world)
    fails_json("psbt", "combine", "vault.json", "a.psbt", "-o", "a.psbt", code="cli.usage", cwd=world)
    assert (world / "a.psbt").read_bytes() == before


def test_tampered_vault_file(world):
    data = json.loads((world / "vault.json").read_text())
    data["descriptor"] = data["descriptor"].replace("sortedmulti(2,", "sortedmulti(1,").split("#")[0]
    from msigvault.policy import add_checksum

    data["descriptor"] = add_checksum(data["descriptor"])
    (world / "tampered.json").write_text(json.dumps(data))
    fails("vault", "show", "tampered.json", match="does not match the recorded policy id", cwd=world)
    error = fails_json("vault", "show", "tampered.json", code="vaultfile.invalid", cwd=world)
    assert (error["path"], error["field"]) == ("tampered.json", "policy_id")


def test_garbage_psbt(world):
    (world / "garbage.psbt").write_bytes(b"psbt\xff\x01\x02")
    fails("psbt", "inspect", "vault.json", "garbage.psbt", match="PSBT", cwd=world)
    fails_json("psbt", "inspect", "vault.json", "garbage.psbt", code="psbt.invalid", cwd=world)


def test_bad_destination(world):
    fails("psbt", "create", "vault.json", "--chain", "chain", "--to", "bc1qnotanaddress:1000", "--fee-rate", "2",
          "-o", "x.psbt", match="address", cwd=world)
    fails("psbt", "create", "vault.json", "--chain", "chain", "--to", "nocolon", "--fee-rate", "2",
          "-o", "x.psbt", match="ADDRESS:AMOUNT", cwd=world)


def test_insufficient_funds(world):
    fails("psbt", "create", "vault.json", "--chain", "chain", "--to",
          "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz:90000000", "--fee-rate", "2", "-o", "x.psbt",
          match="insufficient funds", cwd=world)
    fails_json("psbt", "create", "vault.json", "--chain", "chain", "--to",
               "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz:90000000", "--fee-rate", "2", "-o", "x.psbt",
               code="coinselect.failed", cwd=world)


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
