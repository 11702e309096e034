"""Every public constructor checks each argument at once, with an error that names it (``field``).

Each case would have built an object (and failed later, or not at all), raised a bare TypeError or
ValueError, or raised without naming the argument before these checks existed.
"""

import math

import pytest

from msigvault import Cosigner, Keystore, Utxo, Vault
from msigvault.errors import InvalidDescriptor, InvalidKey, KeystoreError, NetworkMismatch, PolicyError, \
    RegistrationError, SignerRefusal
from msigvault.network import Network
from msigvault.policy.registration import Registration, RegisteredVault
from msigvault.psbt.creator import create_sweep
from msigvault.psbt.signer import SignerPolicy
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
HOLDERS = [TestKeyholder.from_label(n) for n in ("alice", "bob", "carol")]
KEYS = [h.cosigner("wsh") for h in HOLDERS]
VAULT = Vault.multisig(2, KEYS, network=NET)
UTXO = synthetic_utxo(VAULT, 1_000_000)
PAY = [(VAULT.address(7), 100_000)]


def _raises(cls, field, call):
    with pytest.raises(cls) as e:
        call()
    assert e.value.field == field, (e.value.field, str(e.value))
    return e.value


@pytest.mark.parametrize("kwargs,field", [
    ({"sorted": "no"}, "sorted"),
    ({"sorted": 1}, "sorted"),
    ({"script": "p2wsh"}, "script"),
    ({"script": None}, "script"),
    ({"accept": ["bogus"]}, "accept"),
    ({"accept": 5}, "accept"),
])
def test_multisig_arguments(kwargs, field):
    _raises(PolicyError, field, lambda: Vault.multisig(2, KEYS, network=NET, **kwargs))


@pytest.mark.parametrize("m", ["2", 2.0, True, None])
def test_multisig_threshold_type(m):
    _raises(PolicyError, "m", lambda: Vault.multisig(m, KEYS, network=NET))


@pytest.mark.parametrize("m", [0, 4, -1])
def test_multisig_threshold_range(m):
    _raises(PolicyError, "m", lambda: Vault.multisig(m, KEYS, network=NET))


@pytest.mark.parametrize("cosigners", [str(KEYS[0]), KEYS[0], None, 3])
def test_multisig_cosigners_must_be_a_list(cosigners):
    _raises(PolicyError, "cosigners", lambda: Vault.multisig(1, cosigners, network=NET))


def test_multisig_network_type():
    _raises(NetworkMismatch, "network", lambda: Vault.multisig(2, KEYS, network=5))


@pytest.mark.parametrize("args,field", [
    ((2, tuple(KEYS), "wsh", "no", NET), "sorted"),
    ((2, tuple(KEYS), "bogus", True, NET), "script"),
    ((2, None, "wsh", True, NET), "cosigners"),
    ((2, ("x",), "wsh", True, NET), "cosigners"),
    ((2, tuple(KEYS), "wsh", True, "regtest"), "network"),
    (("2", tuple(KEYS), "wsh", True, NET), "m"),
])
def test_vault_fields(args, field):
    _raises(PolicyError, field, lambda: Vault(*args))


def test_from_descriptor_arguments():
    _raises(InvalidDescriptor, "text", lambda: Vault.from_descriptor(b"wsh()", network=NET))
    _raises(PolicyError, "require_checksum",
            lambda: Vault.from_descriptor(VAULT.descriptor(), network=NET, require_checksum="no"))


@pytest.mark.parametrize("kwargs,field", [
    ({"path": [1.5]}, "path"),
    ({"path": (-1,)}, "path"),
    ({"path": (2**32,)}, "path"),
    ({"path": (True,)}, "path"),
    ({"path": (0,) * 256}, "path"),
    ({"path": b"m/48h"}, "path"),
    ({"xpub": 123}, "xpub"),
    ({"fingerprint": b"abc"}, "fingerprint"),
    ({"origin_issues": "origin-unknown"}, "origin_issues"),
    ({"origin_issues": ("nope",)}, "origin_issues"),
])
def test_cosigner_fields(kwargs, field):
    c = KEYS[0]
    args = {"fingerprint": c.fingerprint, "path": c.path, "xpub": c.xpub, **kwargs}
    _raises(InvalidKey, field, lambda: Cosigner(**args))


def test_cosigner_accepts_a_list_path():
    c = KEYS[0]
    assert Cosigner(c.fingerprint, list(c.path), c.xpub) == c


@pytest.mark.parametrize("kwargs,field", [
    ({"txid": "zz" * 32}, "txid"),
    ({"txid": 5}, "txid"),
    ({"vout": -1}, "vout"),
    ({"vout": "0"}, "vout"),
    ({"amount": "5"}, "amount"),
    ({"amount": True}, "amount"),
    ({"amount": 21_000_001 * 10**8}, "amount"),
    ({"script_pubkey": "0014"}, "script_pubkey"),
    ({"branch": 2}, "branch"),
    ({"index": -1}, "index"),
    ({"prev_tx": "00"}, "prev_tx"),
])
def test_utxo_fields(kwargs, field):
    args = {"txid": UTXO.txid, "vout": 0, "amount": 1000, "script_pubkey": UTXO.script_pubkey, **kwargs}
    _raises(PolicyError, field, lambda: Utxo(**args))


def test_utxo_txid_normalised():
    assert Utxo(UTXO.txid.upper(), 0, 1, b"").txid == UTXO.txid


@pytest.mark.parametrize("kwargs,field", [
    ({"max_fee_rate": math.nan}, "max_fee_rate"),
    ({"max_fee_sats": "5"}, "max_fee_sats"),
    ({"index_limit": 1.5}, "index_limit"),
    ({"allowed_sighashes": 2}, "allowed_sighashes"),
    ({"allowed_sighashes": frozenset({0x42})}, "allowed_sighashes"),
    ({"allowed_sighashes": {True}}, "allowed_sighashes"),
    ({"allow_witness_utxo_only": "yes"}, "allow_witness_utxo_only"),
])
def test_signer_policy_fields(kwargs, field):
    _raises(SignerRefusal, field, lambda: SignerPolicy(**kwargs))


def test_signer_policy_normalises_sighashes():
    assert SignerPolicy(allowed_sighashes={2, 0x81}).allowed_sighashes == frozenset({2, 0x81})


@pytest.mark.parametrize("args,field", [
    ((b"abcd"[:3], 1000, bytes(64)), "fingerprint"),
    ((b"abcd", 0, bytes(64)), "index_limit"),
    ((b"abcd", 1000, b""), "signature"),
])
def test_registration_fields(args, field):
    _raises(RegistrationError, field, lambda: Registration(*args))


def test_registered_vault_fields():
    reg = Registration.create(VAULT, HOLDERS[0].root, name="v")
    assert RegisteredVault(VAULT, "v", reg).fingerprint == HOLDERS[0].fingerprint
    _raises(RegistrationError, "vault", lambda: RegisteredVault("v", "v", reg))
    _raises(RegistrationError, "registration", lambda: RegisteredVault(VAULT, "v", reg.to_dict()))
    _raises(RegistrationError, "name", lambda: RegisteredVault(VAULT, b"v", reg))


@pytest.mark.parametrize("kwargs,field", [
    ({"fee_rate": math.nan}, "fee_rate"),
    ({"fee_rate": math.inf}, "fee_rate"),
    ({"fee_rate": "5"}, "fee_rate"),
    ({"fee_rate": True}, "fee_rate"),
    ({"fee_rate": 0.5}, "fee_rate"),
    ({"change_index": -1}, "change_index"),
    ({"change_index": "0"}, "change_index"),
    ({"change_index": 2**31}, "change_index"),
    ({"version": 1}, "version"),
    ({"version": False}, "version"),
    ({"locktime": -1}, "locktime"),
    ({"locktime": 2**32}, "locktime"),
    ({"rbf": "yes"}, "rbf"),
    ({"current_height": -1}, "current_height"),
    ({"current_height": 500_000_000}, "current_height"),
    ({"max_weight": 0}, "max_weight"),
    ({"fee_limits": {"max_fee_sats": 1}}, "fee_limits"),
])
def test_create_psbt_arguments(kwargs, field):
    args = {"fee_rate": 2.0, "change_index": 0, **kwargs}
    _raises(PolicyError, field, lambda: VAULT.create_psbt([UTXO], PAY, **args))


def test_create_sweep_arguments():
    _raises(PolicyError, "fee_rate", lambda: create_sweep(VAULT, [UTXO], VAULT.address(3), fee_rate=math.nan))
    _raises(PolicyError, "locktime", lambda: create_sweep(VAULT, [UTXO], VAULT.address(3), fee_rate=2, locktime=-5))
    _raises(PolicyError, "vault", lambda: create_sweep("vault", [UTXO], VAULT.address(3), fee_rate=2))


def test_valid_create_psbt_still_works():
    psbt = VAULT.create_psbt([UTXO], PAY, fee_rate=2.0, change_index=3, locktime=0xFFFFFFFF, rbf=False,
                             version=2, max_weight=None, fee_limits=None)
    assert psbt.version == 2


@pytest.mark.parametrize("kwargs,field", [
    ({"kdf_cost": 1000}, "kdf_cost"),
    ({"kdf_cost": 2.0**14}, "kdf_cost"),
    ({"words": 13}, "words"),
])
def test_keystore_create_arguments(tmp_path, kwargs, field):
    _raises(KeystoreError, field, lambda: Keystore.create(tmp_path / "k.key", "pw", **kwargs))
    assert not (tmp_path / "k.key").exists()


def test_keystore_create_path_type():
    _raises(KeystoreError, "path", lambda: Keystore.create(123, "pw", kdf_cost=2**14))


def test_keystore_cosigner_script_checked_before_unlocking(tmp_path):
    ks = Keystore.create(tmp_path / "k.key", "pw", kdf_cost=2**14)
    # a wrong passphrase too: the script is refused before the key derivation is even tried
    _raises(PolicyError, "script", lambda: ks.cosigner(NET, "wrong", script="p2wsh"))
    assert ks.cosigner(NET, "pw", script="tr").path == ks.cosigner(NET, "pw", script="tr").path
