"""The CLI signer signs only for a vault its own key registered; prompts never approve blind;
outputs are checked before anything is asked or written."""

import json
import os
import subprocess
import sys

import pytest

from msigvault.testing.cli import run_cli

PW = "registration passphrase"


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
    assert match in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("registration")
    for name in ("a", "b", "c", "m"):
        ok("key", "new", f"{name}.key", "--skip-backup-check", cwd=d)
        ok("key", "cosigner", f"{name}.key", "-n", "regtest", "-o", f"{name}.cosigner", cwd=d)
    ok("vault", "create", "-m", "2", "a.cosigner", "b.cosigner", "c.cosigner", "-n", "regtest",
       "--name", "reserve", "-o", "vault.json", cwd=d)
    ok("regtest", "init", "chain", cwd=d)
    address = json.loads(ok("vault", "address", "vault.json", "--json", cwd=d).stdout)[0]["address"]
    ok("regtest", "fund", "chain", address, "500000", cwd=d)
    ok("psbt", "create", "vault.json", "--chain", "chain", "--to",
       "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz:100000", "--fee-rate", "2", "-o", "spend.psbt", cwd=d)
    return d


def test_unregistered_vault_is_refused_with_how_to_register(site):
    fails("psbt", "sign", "vault.json", "spend.psbt", "--key", "a.key", "--yes", "-o", "x.psbt",
          match="msigvault vault verify", cwd=site)
    assert not (site / "x.psbt").exists()


def test_verify_without_yes_asks_and_no_writes_nothing(site):
    before = (site / "vault.json").read_bytes()
    proc = fails("vault", "verify", "vault.json", "--key", "a.key", match="not registered", cwd=site, stdin="n\n")
    assert "policy id:" in proc.stdout and "Register it" in proc.stderr
    assert (site / "vault.json").read_bytes() == before


def test_registered_sign_and_substitution_refused(site):
    ok("vault", "verify", "vault.json", "--key", "a.key", "--yes", cwd=site)
    shown = json.loads(ok("vault", "show", "vault.json", "--json", cwd=site).stdout)
    assert [r["fingerprint"] for r in shown["registered_by"]] == [json.loads(
        ok("key", "info", "a.key", "--json", cwd=site).stdout)["fingerprint"]]
    proc = ok("psbt", "sign", "vault.json", "spend.psbt", "--key", "a.key", "--yes", "-o", "a.psbt", cwd=site)
    assert "Vault 'reserve' (registered)" in proc.stdout
    # the attacker swaps cosigner c for their own key, fixing checksum and policy id
    from msigvault import Vault
    from msigvault.network import Network

    obj = json.loads((site / "vault.json").read_text())
    v = Vault.from_descriptor(obj["descriptor"], network=Network.REGTEST)
    mallory = (site / "m.cosigner").read_text().strip()
    forged = Vault.multisig(2, [str(v.cosigners[0]), str(v.cosigners[1]), mallory], network=Network.REGTEST)
    obj["descriptor"], obj["policy_id"] = forged.descriptor(), forged.policy_id
    (site / "forged.json").write_text(json.dumps(obj))
    fails("psbt", "sign", "forged.json", "spend.psbt", "--key", "a.key", "--yes", "-o", "f.psbt",
          match="does not match this vault", cwd=site)
    assert not (site / "f.psbt").exists()


def test_json_sign_shows_the_summary_before_asking(site):
    ok("vault", "verify", "vault.json", "--key", "b.key", "--yes", cwd=site)
    proc = run("psbt", "sign", "vault.json", "spend.psbt", "--key", "b.key", "--json", "-o", "b.psbt",
               cwd=site, stdin="n\n")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    prompt = proc.stderr.index("Sign this transaction?")
    assert 0 <= proc.stderr.index("PAY") < prompt and proc.stderr.index("fee:") < prompt
    # with --json the refusal is the JSON error on stdout (docs/errors.md), and nothing else is printed there
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "cli.not-approved" and "not signed" in error["message"]
    assert not (site / "b.psbt").exists()


def test_unwritable_output_found_before_the_passphrase(site):
    # no passphrase is available: had the command got as far as unlocking, it would ask for one
    proc = fails("psbt", "sign", "vault.json", "spend.psbt", "--key", "b.key", "--yes",
                 "-o", "no/such/dir/b.psbt", match="does not exist", cwd=site, passphrase=None)
    assert "Passphrase" not in proc.stderr and ".tmp" not in proc.stderr
    (site / "exists.psbt").write_text("keep me")
    fails("psbt", "sign", "vault.json", "spend.psbt", "--key", "b.key", "--yes", "-o", "exists.psbt",
          match="already exists", cwd=site, passphrase=None)
    assert (site / "exists.psbt").read_text() == "keep me"


def test_inspect_of_another_vaults_psbt_exits_2(site):
    ok("vault", "create", "-m", "1", "m.cosigner", "-n", "regtest", "-o", "other.json", cwd=site)
    fails("psbt", "inspect", "other.json", "spend.psbt", match="does not spend from the vault", cwd=site)


def test_three_passphrase_tries_at_a_prompt(site, monkeypatch):
    """A passphrase typed at the prompt may be mistyped twice; from the environment, once."""
    from msigvault.cli import common
    from msigvault.keys.keystore import WrongPassphrase

    typed = iter(["wrong", "also wrong", PW])
    monkeypatch.delenv("MSIGVAULT_PASSPHRASE", raising=False)
    monkeypatch.setattr(common, "passphrase", lambda fd, **kw: next(typed))
    root, ks = common.unlock_root(site / "c.key", None)
    assert root.fingerprint.hex() == ks.fingerprint
    typed = iter(["wrong", "wrong", "wrong", PW])
    with pytest.raises(WrongPassphrase):
        common.unlock_root(site / "c.key", None)
    assert next(typed) == PW  # exactly three tries were used
    monkeypatch.setenv("MSIGVAULT_PASSPHRASE", "wrong")
    typed = iter(["wrong", PW])
    with pytest.raises(WrongPassphrase):
        common.unlock_root(site / "c.key", None)
    assert next(typed) == PW  # one try only when the passphrase does not come from a person


def test_scriptable_address_and_amount_units(site):
    plain = ok("vault", "address", "vault.json", "--index", "2", "--count", "2", cwd=site).stdout.split()
    rows = json.loads(ok("vault", "address", "vault.json", "--index", "2", "--count", "2", "--json", cwd=site).stdout)
    assert plain == [r["address"] for r in rows] and plain[0].startswith("bcrt1")
    payee = "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz"
    out = json.loads(ok("psbt", "create", "vault.json", "--chain", "chain", "--to", f"{payee}:0.001btc",
                        "--fee-rate", "2", "-o", "btc.psbt", "--json", cwd=site).stdout)
    assert [o["amount"] for o in out["outputs"] if o["kind"] == "payment"] == [100_000]
    out = json.loads(ok("psbt", "create", "vault.json", "--chain", "chain", "--to", f"{payee}:max",
                        "--fee-rate", "2", "-o", "max.psbt", "--json", cwd=site).stdout)
    assert len(out["outputs"]) == 1 and out["outputs"][0]["amount"] + out["fee"] == 500_000
    text = ok("psbt", "inspect", "vault.json", "max.psbt", cwd=site).stdout
    assert f"({out['outputs'][0]['amount']:,} sat)" in text and " BTC (" in text
    fails("psbt", "create", "vault.json", "--chain", "chain", "--to", f"{payee}:0.000000001btc",
          "--fee-rate", "2", "-o", "bad.psbt", match="whole number of sats", cwd=site)
    fails("psbt", "create", "vault.json", "--chain", "chain", "--to", f"{payee}:max", "--to", f"{payee}:1000",
          "--fee-rate", "2", "-o", "bad.psbt", match="give no other --to", cwd=site)
    assert not (site / "bad.psbt").exists()


def test_shell_completion_as_documented(tmp_path):
    from pathlib import Path

    command = str(Path(sys.executable).parent / "msigvault")  # the installed entry point
    env = {**os.environ, "_MSIGVAULT_COMPLETE": "bash_source"}
    proc = subprocess.run([command], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "_msigvault_completion" in proc.stdout
    env = {**os.environ, "_MSIGVAULT_COMPLETE": "bash_complete", "COMP_WORDS": "msigvault psbt si", "COMP_CWORD": "2"}
    proc = subprocess.run([command], env=env, capture_output=True, text=True, timeout=60)
    assert "plain,sign" in proc.stdout.split()  # click bash_complete answers TYPE,VALUE lines


def test_vault_create_refuses_unseparated_test_keys_unless_accepted(tmp_path):
    from msigvault.keys.cosigner import Cosigner
    from msigvault.network import Network
    from msigvault.testing.keyholders import TestKeyholder

    records = [str(Cosigner.from_root(TestKeyholder.from_label(f"cli-45-{i}").root, "m/45h", Network.REGTEST))
               for i in range(2)]
    fails("vault", "create", "-m", "2", *records, "--script", "sh", "-n", "regtest", "-o", "v.json",
          match="unseparated-test-keys", cwd=tmp_path)
    assert not (tmp_path / "v.json").exists()
    out = json.loads(ok("vault", "create", "-m", "2", *records, "--script", "sh", "-n", "regtest", "-o", "v.json",
                        "--accept", "unseparated-test-keys", "--json", cwd=tmp_path).stdout)
    assert out["accepted_deviations"] and "mainnet too" in out["accepted_deviations"][0]
    shown = json.loads(ok("vault", "show", "v.json", "--json", cwd=tmp_path).stdout)
    assert shown["accepted_deviations"] == out["accepted_deviations"]
    # the default sh path on a test network is separated from mainnet's m/45'
    ok("key", "new", "k.key", "--skip-backup-check", cwd=tmp_path)
    ok("key", "cosigner", "k.key", "-n", "regtest", "--script", "sh", "-o", "k.cosigner", cwd=tmp_path)
    assert "/45h/1h/0h]" in (tmp_path / "k.cosigner").read_text()


def test_missing_qr_extra_is_found_before_anything_is_asked_or_written(site, tmp_path):
    """Without the qr extra (simulated: segno cannot be imported), --qr fails first, leaves no
    PSBT, no frame directory and no advanced change index behind."""
    blocker = tmp_path / "no-qr"
    (blocker / "segno").mkdir(parents=True)
    (blocker / "segno" / "__init__.py").write_text("raise ImportError('segno is not installed')\n")
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    env["PYTHONPATH"] = str(blocker)
    ok("vault", "verify", "vault.json", "--key", "a.key", "--yes", cwd=site)
    before = json.loads((site / "vault.json").read_text())["next_change_index"]
    base = [sys.executable, "-m", "msigvault"]
    proc = subprocess.run(base + ["psbt", "create", "vault.json", "--chain", "chain", "--to",
                                  "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz:10000", "--fee-rate", "2",
                                  "-o", "qr-create.psbt", "--qr", "qr-create"], cwd=site, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "qr extra" in proc.stderr, proc.stderr
    assert not (site / "qr-create.psbt").exists() and not (site / "qr-create").exists()
    assert json.loads((site / "vault.json").read_text())["next_change_index"] == before
    proc = subprocess.run(base + ["psbt", "sign", "vault.json", "spend.psbt", "--key", "a.key", "-o", "qr-sign.psbt",
                                  "--qr", "qr-sign"], cwd=site, env=env, capture_output=True, text=True,
                          timeout=120, input="y\n")
    assert proc.returncode == 2 and "qr extra" in proc.stderr, proc.stderr
    assert "Sign this transaction?" not in proc.stderr and "Passphrase" not in proc.stderr
    assert not (site / "qr-sign.psbt").exists() and not (site / "qr-sign").exists()
