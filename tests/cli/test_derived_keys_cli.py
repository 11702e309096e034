"""msigvault psbt sign --derived-keys FILE: the keyholder's signed cache of the vault's derived keys.

The first signature writes the record, later ones read it and sign the same bytes; a record the
keyholder's registration key did not sign for this vault is refused before anything is unlocked
or written, with a message that says to delete it.
"""

import hashlib
import json

import pytest
from embit.hashes import tagged_hash
from embit.util import secp256k1 as _secp

from msigvault import Vault
from msigvault.keys.cosigner import Cosigner
from msigvault.keys.keystore import Keystore
from msigvault.keys.paths import default_account_path
from msigvault.network import Network
from msigvault.policy import derived
from msigvault.policy.registration import Registration
from msigvault.secp import pubkey_create
from msigvault.testing.cli import run_cli
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo
from msigvault.vaultfile import VaultFile, load_vault_file

NET = Network.REGTEST
PW = "derived keys passphrase"
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
SIGN = ("psbt", "sign", "vault.json", "spend.psbt", "--key", "alice.key", "--yes")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A registered 2-of-3 wsh vault of alice (a key file) and two test keyholders, and two spends."""
    d = tmp_path_factory.mktemp("derived-keys")
    ks = Keystore.create(d / "alice.key", PW, kdf_cost=2**14)
    root = ks.root_key(PW)
    alice = Cosigner.from_root(root, default_account_path(NET, "wsh", 0), NET)
    others = [TestKeyholder.from_label(f"dk-cli-{i}").cosigner("wsh") for i in range(2)]
    vault = Vault.multisig(2, [alice, *others], script="wsh", network=NET)
    VaultFile(vault, "reserve").with_registration(Registration.create(vault, root, name="reserve")) \
        .save(d / "vault.json")
    coins = [synthetic_utxo(vault, 200_000, index=i, seed="cli") for i in (0, 3)]
    (d / "spend.psbt").write_bytes(vault.create_psbt(coins, [(EXTERNAL, 300_000)], fee_rate=2.0,
                                                     change_index=1).serialize())
    more = [synthetic_utxo(vault, 200_000, index=9, seed="cli"), coins[0]]
    (d / "more.psbt").write_bytes(vault.create_psbt(more, [(EXTERNAL, 300_000)], fee_rate=2.0,
                                                    change_index=2).serialize())
    return d


def run(*args, cwd, passphrase=PW):
    return run_cli(*args, cwd=cwd, passphrase=passphrase)


def ok_json(*args, cwd):
    proc = run(*args, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def registered(site):
    vf = load_vault_file(site / "vault.json")
    return vf.registered(Keystore.open(site / "alice.key").fingerprint)


def test_the_first_sign_writes_the_record_and_the_next_signs_the_same_psbt_with_it(site):
    first = ok_json(*SIGN, "-o", "first.psbt", "--derived-keys", "alice.dk", cwd=site)
    saved = first["derived_keys"]["saved"]
    assert first["derived_keys"] == {"file": "alice.dk", "loaded": 0, "saved": saved}
    assert saved >= 3  # two coins and the change, at least
    record = (site / "alice.dk").read_bytes()
    # alice's record, signed by her registration key: it loads, checked with public data only
    assert registered(site).load_derived_keys(record) == saved

    second = ok_json(*SIGN, "-o", "second.psbt", "--derived-keys", "alice.dk", cwd=site)
    assert second["derived_keys"] == {"file": "alice.dk", "loaded": saved, "saved": 0}
    assert (site / "second.psbt").read_bytes() == (site / "first.psbt").read_bytes()
    assert (site / "alice.dk").read_bytes() == record  # nothing gained: not rewritten

    # a spend of a coin the record does not hold: it gains entries and is rewritten
    third = ok_json("psbt", "sign", "vault.json", "more.psbt", "--key", "alice.key", "--yes", "-o", "third.psbt",
                    "--derived-keys", "alice.dk", cwd=site)
    assert third["derived_keys"]["loaded"] == saved and third["derived_keys"]["saved"] > saved
    assert registered(site).load_derived_keys((site / "alice.dk").read_bytes()) == third["derived_keys"]["saved"]
    assert not list(site.glob(".alice.dk.*"))  # written atomically, no temporary file left


def test_without_the_option_nothing_changes(site):
    before = set(site.iterdir())
    proc = run(*SIGN, "-o", "plain.psbt", "--json", cwd=site)
    assert proc.returncode == 0, proc.stderr
    assert "derived_keys" not in json.loads(proc.stdout)
    assert set(site.iterdir()) - before == {site / "plain.psbt"}
    text = run(*SIGN, "-o", "plain-text.psbt", cwd=site)
    assert text.returncode == 0 and "derived-key" not in text.stdout + text.stderr
    assert (site / "plain-text.psbt").read_bytes() == (site / "plain.psbt").read_bytes()


def _flipped(data):
    b = bytearray(data)
    b[len(b) // 2] ^= 0x01
    return bytes(b)


def _planted(data):
    """The attacker's record: a receive key replaced by theirs, re-signed with their own key."""
    secret = hashlib.sha256(b"mallory").digest()
    body = bytearray(data[:-96])
    body[43 + 5:43 + 5 + 33] = TestKeyholder.from_label("mallory").cosigner("wsh").pubkey_at(0, 0)
    signed = bytes(body) + pubkey_create(secret)[1:]
    return signed + _secp.schnorrsig_sign(tagged_hash(derived.TAG, signed), _secp.keypair_create(secret), None,
                                          bytes(32))


@pytest.mark.parametrize("attack", ["flipped", "planted", "oversized", "truncated"])
def test_a_bad_record_is_refused_before_unlocking_and_nothing_is_written(site, attack):
    if not (site / "good.dk").exists():
        ok_json(*SIGN, "-o", "for-good.psbt", "--derived-keys", "good.dk", cwd=site)
    good = (site / "good.dk").read_bytes()
    bad = site / f"{attack}.dk"
    if attack == "oversized":
        with bad.open("wb") as f:
            f.truncate(derived.MAX_BYTES + 1)
    else:
        bad.write_bytes({"flipped": _flipped, "planted": _planted, "truncated": lambda b: b[:-1]}[attack](good))
    before = bad.read_bytes()
    # no passphrase available: had the command got as far as unlocking the key, it would ask for one
    proc = run(*SIGN, "-o", f"{attack}.psbt", "--derived-keys", bad.name, "--json", cwd=site, passphrase=None)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Passphrase" not in proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "policy.derived-keys" and error["path"] == bad.name
    assert f"delete {bad.name}" in error["message"] and "nothing was signed or written" in error["message"]
    assert not (site / f"{attack}.psbt").exists()
    assert bad.read_bytes() == before
    # the same in text: one line on stderr
    text = run(*SIGN, "-o", f"{attack}.psbt", "--derived-keys", bad.name, cwd=site, passphrase=None)
    assert text.returncode == 2 and text.stderr.startswith("error: ") and text.stderr.count("\n") == 1
    assert not (site / f"{attack}.psbt").exists()


def test_the_record_cannot_be_the_output_or_the_key_file(site):
    for target in ("same.psbt", "alice.key", "vault.json"):
        proc = run(*SIGN, "-o", "same.psbt", "--derived-keys", target, cwd=site, passphrase=None)
        assert proc.returncode == 2 and "a file of its own" in proc.stderr, proc.stderr
    assert not (site / "same.psbt").exists()


def test_a_record_that_cannot_be_created_is_refused_before_unlocking(site):
    proc = run(*SIGN, "-o", "nowhere.psbt", "--derived-keys", "no/such/dir/alice.dk", cwd=site, passphrase=None)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Passphrase" not in proc.stderr
    assert not (site / "nowhere.psbt").exists()
