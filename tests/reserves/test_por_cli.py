"""msigvault proof reserves ... through the command, in subprocesses, on a regtest chain directory:
the coordinator creates, two keyholders sign (one with 'proof reserves sign', one with the ordinary
'psbt sign'), the coordinator finalizes, the auditor verifies and records; after one coin is
spent the verification exits 2 naming it."""

import json
from pathlib import Path

import pytest

from msigvault.address import address_from_script
from msigvault.network import Network
from msigvault.psbt.psbt import Psbt
from msigvault.testing.cli import run_cli
from msigvault.transport.files import read_psbt_file

PASSPHRASES = {"alice": "alice pass", "bob": "bob pass", "carol": "carol pass"}
EXTERNAL = address_from_script(bytes.fromhex("0014") + bytes(range(20)), Network.REGTEST)


def msigvault(*args, cwd, passphrase=None, ok=True):
    proc = run_cli(*args, cwd=cwd, passphrase=passphrase)
    if ok and proc.returncode != 0:
        raise AssertionError(f"msigvault {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc


def as_json(*args, cwd, passphrase=None):
    return json.loads(msigvault(*args, "--json", cwd=cwd, passphrase=passphrase).stdout)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("por-cli")
    for name, pw in PASSPHRASES.items():
        msigvault("key", "new", f"{name}.key", "--skip-backup-check", cwd=d, passphrase=pw)
        msigvault("key", "cosigner", f"{name}.key", "-n", "regtest", "--script", "wsh", "-o", f"{name}.cosigner",
                  cwd=d, passphrase=pw)
    msigvault("vault", "create", "-m", "2", *(f"{n}.cosigner" for n in PASSPHRASES), "--script", "wsh",
              "-n", "regtest", "-o", "vault.json", cwd=d)
    for name, pw in PASSPHRASES.items():
        msigvault("vault", "verify", "vault.json", "--key", f"{name}.key", "--yes", cwd=d, passphrase=pw)
    msigvault("regtest", "init", "chain", cwd=d)
    for index, amounts in ((0, ["40000", "25000"]), (3, ["110000"])):
        address = as_json("vault", "address", "vault.json", "--index", str(index), cwd=d)
        address = address["address"] if isinstance(address, dict) else address[0]["address"]
        msigvault("regtest", "fund", "chain", address, *amounts, cwd=d)
    return d


def test_proof_of_reserves_through_the_cli(site: Path):
    made = as_json("proof", "reserves", "create", "vault.json", "--backend", "regtest:chain", "--auditor",
                   "Auditor Ltd", "--date", "2026-12-01", "--nonce", "7f3a9c", "--message-out", "msg.txt",
                   "-o", "por.psbt", cwd=site)
    message = (site / "msg.txt").read_text()
    assert made["total"] == 175_000 and len(made["coins"]) == 3 and made["message"] == message
    assert "auditor: Auditor Ltd" in message and f"as of block: {made['height']} {made['block_hash']}" in message
    wrong = run_cli("proof", "reserves", "sign", "vault.json", "por.psbt", "--message", "another message",
                    "--key", "alice.key", "--yes", "-o", "x.psbt", "--json", cwd=site,
                    passphrase=PASSPHRASES["alice"])
    assert wrong.returncode == 2 and json.loads(wrong.stdout)["error"]["code"] == "signer.reserves-proof"
    assert not (site / "x.psbt").exists()
    out = msigvault("proof", "reserves", "sign", "vault.json", "por.psbt", "--message-file", "msg.txt",
                    "--key", "alice.key", "--yes", "-o", "alice-por.psbt", cwd=site, passphrase=PASSPHRASES["alice"])
    assert "PROOF OF RESERVES: no coins move" in out.stdout and "in 3 coin(s)" in out.stdout
    out = msigvault("psbt", "sign", "vault.json", "por.psbt", "--key", "carol.key", "--yes", "-o", "carol-por.psbt",
                    cwd=site, passphrase=PASSPHRASES["carol"])
    assert "PROOF OF RESERVES" in out.stdout and "auditor: Auditor Ltd" in out.stdout and "PAY" not in out.stdout
    done = as_json("proof", "reserves", "finalize", "vault.json", "alice-por.psbt", "carol-por.psbt",
                   "-o", "por.json", cwd=site)
    assert done["total"] == 175_000 and done["height"] == made["height"]
    msigvault("proof", "reserves", "snapshot", "vault.json", "--backend", "regtest:chain", "-o", "snap.json", cwd=site)
    ok = as_json("proof", "reserves", "verify", "--proof", "por.json", "--vault", "vault.json", "--backend",
                 "regtest:chain", "--message-file", "msg.txt", "--record", cwd=site)
    assert (ok["valid"], ok["proven_amount"], ok["coin_count"], ok["recorded"]) == (True, 175_000, 3, True)
    assert ok["verified_by_kernel"] is True
    audit = as_json("audit", "verify", "--vault", "vault.json", cwd=site)
    assert audit["ok"] is True

    # spend coins in an ordinary ceremony and mine it: the verification now fails, naming them
    msigvault("psbt", "create", "vault.json", "--backend", "regtest:chain", "--to", f"{EXTERNAL}:100000",
              "--fee-rate", "2", "-o", "spend.psbt", cwd=site)
    spent = Psbt.parse(read_psbt_file(site / "spend.psbt"))
    outpoints = {f"{bytes(spent.prevout(i)[0])[::-1].hex()}:{spent.prevout(i)[1]}" for i in range(spent.input_count)}
    for name in ("alice", "bob"):
        msigvault("psbt", "sign", "vault.json", "spend.psbt", "--key", f"{name}.key", "--yes", "-o", f"{name}-s.psbt",
                  cwd=site, passphrase=PASSPHRASES[name])
    msigvault("psbt", "combine", "vault.json", "alice-s.psbt", "bob-s.psbt", "-o", "full.psbt", cwd=site)
    msigvault("psbt", "finalize", "vault.json", "full.psbt", "-o", "final.psbt", cwd=site)
    msigvault("broadcast", "vault.json", "final.psbt", "--chain", "chain", cwd=site)
    bad = run_cli("proof", "reserves", "verify", "--proof", "por.json", "--vault", "vault.json", "--backend",
                  "regtest:chain", "--json", cwd=site)
    assert bad.returncode == 2
    error = json.loads(bad.stdout)["error"]
    assert error["code"] == "reserves.coin-spent"
    assert outpoints and all(op in error["message"] for op in outpoints)
    kept = set(made["coins"]) - outpoints
    assert not any(op in error["message"] for op in kept)
    # the snapshot of the proof's block still proves everything (what happened after does not count);
    # an auditor with only the descriptor checks the same
    descriptor = as_json("vault", "show", "vault.json", cwd=site)["descriptor"]
    then = as_json("proof", "reserves", "verify", "--proof", "por.json", "--descriptor", descriptor, "-n", "regtest",
                   "--snapshot", "snap.json", cwd=site)
    assert (then["valid"], then["proven_amount"], then["height"]) == (True, 175_000, made["height"])
