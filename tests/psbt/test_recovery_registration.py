"""Registrations sign the spending paths a keyholder agreed to (issue 18, item 4): the signer
signs only for those, old registrations mean "primary only", and the summary says when a
recovery spend can be mined."""

import os

import pytest
from embit.util import secp256k1 as _secp

from msigvault import Vault
from msigvault.errors import RegistrationError, SignerRefusal
from msigvault.network import Network
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.policy.registration import (
    REGISTRATION_BRANCH,
    RegisteredVault,
    Registration,
    own_cosigner,
    registration_message,
)
from msigvault.psbt import fields as F
from msigvault.psbt.signer import SignerPolicy, sign
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
PAYEE = bytes.fromhex("0014") + bytes(range(20))
P = [TestKeyholder.from_label(f"reg-p{i}", NET) for i in range(3)]
R = [TestKeyholder.from_label(f"reg-r{i}", NET) for i in range(2)]
POLICY = SignerPolicy(max_fee_fraction=1.0)


def wsh_vault(lock=Timelock.older(100)):
    return Vault.multisig(2, [h.cosigner("wsh") for h in P], script="wsh", network=NET,
                          recovery=[Recovery(1, [h.cosigner("wsh") for h in R], lock)])


def decaying_tr():
    return Vault.multisig(2, [h.cosigner("tr") for h in P], script="tr", network=NET,
                          recovery=[Recovery(1, [h.cosigner("tr") for h in P], Timelock.older(100))])


def spend(v, path=None):
    return v.create_psbt([synthetic_utxo(v, 90_000, index=4)], [(PAYEE, 30_000)], fee_rate=2.0, change_index=4,
                         path=path, fee_limits=POLICY)


def legacy_registration(v, holder, name="vault"):
    """A registration as msigvault wrote it before paths were signed (no paths in the message)."""
    me, account = own_cosigner(v, holder.root)
    msg = registration_message(v, name=name, fingerprint=me.fingerprint, index_limit=1000)
    secret = account.child(REGISTRATION_BRANCH).child(0).key[1:]
    sig = _secp.schnorrsig_sign(msg, _secp.keypair_create(secret), None, os.urandom(32))
    return Registration(me.fingerprint, 1000, sig)


def test_a_new_registration_signs_the_paths_holding_the_key():
    v = wsh_vault()
    assert Registration.create(v, P[0].root, name="vault").paths == (0,)
    reg = Registration.create(v, R[0].root, name="vault")
    assert reg.paths == (0, 1)
    assert Registration.from_dict(reg.to_dict()) == reg and reg.to_dict()["paths"] == [0, 1]
    RegisteredVault(v, "vault", reg)
    # the paths are signed: editing them in the file breaks the registration
    forged = Registration(reg.fingerprint, reg.index_limit, reg.signature, (0,))
    with pytest.raises(RegistrationError, match="spending paths"):
        RegisteredVault(v, "vault", forged)
    stripped = Registration(reg.fingerprint, reg.index_limit, reg.signature)  # made to look like an old one
    with pytest.raises(RegistrationError, match="does not match"):
        RegisteredVault(v, "vault", stripped)
    with pytest.raises(RegistrationError, match="does not hold your key"):
        Registration.create(v, P[0].root, name="vault", paths=[0, 1])
    with pytest.raises(RegistrationError, match="recovery paths 1 to 1"):
        Registration.create(v, R[0].root, name="vault", paths=[2])


def test_a_plain_vault_registration_signs_what_it_always_did():
    v = Vault.multisig(2, [h.cosigner("wsh") for h in P], script="wsh", network=NET)
    reg = Registration.create(v, P[1].root, name="vault")
    assert reg.paths is None and "paths" not in reg.to_dict()
    assert legacy_registration(v, P[1]).to_dict().keys() == reg.to_dict().keys()
    RegisteredVault(v, "vault", legacy_registration(v, P[1]))
    with pytest.raises(RegistrationError, match="no recovery paths"):
        Registration.create(v, P[1].root, name="vault", paths=[0, 1])
    # a registration naming paths is refused for a vault that has none (recovery paths removed)
    with pytest.raises(RegistrationError, match="names spending paths"):
        RegisteredVault(v, "vault", Registration(P[1].fingerprint, 1000, bytes(64), (0, 1)))


@pytest.mark.parametrize("bad", [[1], [0, 0], [0, 9], "01", [0, True], list(range(10))])
def test_registration_paths_are_checked_when_read(bad):
    with pytest.raises(RegistrationError):
        Registration.from_dict({"fingerprint": "00" * 4, "index_limit": 10, "signature": "00" * 64, "paths": bad})


def test_an_old_registration_allows_the_primary_path_only():
    """Fails before the fix: the signer signed a recovery spend for any registered keyholder."""
    v = wsh_vault()
    old = RegisteredVault(v, "vault", legacy_registration(v, R[0]))
    assert old.allowed_paths == frozenset({0})
    with pytest.raises(SignerRefusal, match="allows you to sign for the primary path only"):
        sign(spend(v, "recovery"), old, R[0].root, policy=POLICY)
    # a new registration with the recovery path signs it
    new = RegisteredVault(v, "vault", Registration.create(v, R[0].root, name="vault"))
    signed, summary = sign(spend(v, "recovery"), new, R[0].root, policy=POLICY)
    assert summary.signing_paths == ("recovery 1",)
    assert len(signed.inputs[0].items_of_type(F.PSBT_IN_PARTIAL_SIG)) == 1
    # and a primary keyholder's old registration still signs the everyday spend
    sign(spend(v), RegisteredVault(v, "vault", legacy_registration(v, P[0])), P[0].root, policy=POLICY)


def test_a_primary_only_registration_signs_no_recovery_leaf():
    """tr decaying threshold: the same key is on both leaves; registered for the primary only, it
    signs the primary leaf alone even when the transaction opens the recovery leaf."""
    v = decaying_tr()
    d = v.derive(4)
    only_primary = RegisteredVault(v, "vault", Registration.create(v, P[0].root, name="vault", paths=[0]))
    both = RegisteredVault(v, "vault", Registration.create(v, P[0].root, name="vault"))
    assert both.registration.paths == (0, 1)
    signed, summary = sign(spend(v, "recovery"), only_primary, P[0].root, policy=POLICY)
    leaves = [bytes(k[32:]) for k, _ in signed.inputs[0].items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)]
    assert leaves == [d.leaves[0].leaf_hash]
    assert summary.signing_paths == ("primary",)
    assert "your registration does not allow this path" in summary.text()
    signed, summary = sign(spend(v, "recovery"), both, P[0].root, policy=POLICY)
    assert len(signed.inputs[0].items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)) == 2
    # a primary spend opens only the primary leaf: one signature, whatever was registered
    signed, _ = sign(spend(v), both, P[0].root, policy=POLICY)
    assert [bytes(k[32:]) for k, _ in signed.inputs[0].items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)] == \
        [d.leaves[0].leaf_hash]


@pytest.mark.parametrize("lock,expect", [
    (Timelock.older(100), "every input's coin is old enough: 100 blocks after the coin confirmed"),
    (Timelock.older_seconds(512 * 3), "1,536 seconds after the coin confirmed"),
    (Timelock.after(5_000), "it can be mined from block 5,001 (nLockTime 5,000"),
    (Timelock.after(1_700_000_000), "median time passes unix time 1,700,000,000"),
])
def test_the_summary_says_when_a_recovery_spend_can_be_mined(lock, expect):
    v = wsh_vault(lock)
    _, summary = v.sign(spend(v, "recovery"), R[1].root, policy=POLICY)
    assert any(expect in n for n in summary.notes), summary.notes
    assert "recovery 1 spend" in summary.text()
    _, primary = v.sign(spend(v), P[1].root, policy=POLICY)
    assert not any("spend: it can be mined" in n for n in primary.notes)


def test_a_lock_of_the_other_kind_does_not_open_the_path():
    """nSequence in 512-second units for a lock in blocks opens nothing: the recovery keyholder
    is refused (a shorter lock of the right kind too)."""
    v = wsh_vault(Timelock.older(100))
    for seq in ((1 << 22) | 100, 99):
        psbt = v.create_psbt([synthetic_utxo(v, 90_000, index=4)], [(PAYEE, 30_000)], fee_rate=2.0,
                             change_index=4, path="recovery", fee_limits=POLICY, version=2)
        assert psbt.sequence(0) == 100
        psbt.inputs[0].set(F.PSBT_IN_SEQUENCE, b"", seq.to_bytes(4, "little"))
        with pytest.raises(SignerRefusal, match="do not meet that lock"):
            v.sign(psbt, R[0].root, policy=POLICY)


def test_vault_verify_path_option_through_the_command(tmp_path, monkeypatch):
    """A recovery keyholder registered with --path primary is refused a recovery spend; a later
    vault verify without --path keeps that choice; --path recovery lets them sign."""
    import json

    from click.testing import CliRunner

    from msigvault.cli import cli
    from msigvault.vaultfile import load_vault_file

    monkeypatch.chdir(tmp_path)
    env = {"MSIGVAULT_PASSPHRASE": "registration paths passphrase"}

    def run(*args, code=0):
        result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    for name in ("alice", "bob", "dave"):
        run("key", "new", f"{name}.key", "--skip-backup-check")
        run("key", "cosigner", f"{name}.key", "-n", "regtest", "-o", f"{name}.cosigner")
    run("vault", "create", "-m", "2", "alice.cosigner", "bob.cosigner", "-n", "regtest",
        "--recovery", "1:older=6:dave.cosigner", "-o", "vault.json")
    out = run("vault", "verify", "vault.json", "--key", "dave.key", "--path", "primary", "--yes")
    assert "you sign for: primary" in out.output and "recovery 1" not in out.output.split("you sign for:")[1]
    bad = run("vault", "verify", "vault.json", "--key", "alice.key", "--path", "recovery", "--yes", code=2)
    assert "does not hold your key" in bad.output
    v = load_vault_file("vault.json").vault
    (tmp_path / "utxos.json").write_text(json.dumps([synthetic_utxo(v, 80_000, index=1).to_dict()]))
    run("psbt", "create", "vault.json", "--utxos", "utxos.json", "--to", f"{v.address(9)}:30000",
        "--fee-rate", "2", "--path", "recovery", "-o", "spend.psbt")
    refused = run("psbt", "sign", "vault.json", "spend.psbt", "--key", "dave.key", "--yes", "-o", "d.psbt", code=2)
    assert "allows you to sign for the primary path only" in refused.output
    run("vault", "verify", "vault.json", "--key", "dave.key", "--yes")  # keeps what was registered
    shown = json.loads(run("vault", "show", "vault.json", "--json").stdout)["registered_by"]
    assert [r["paths"] for r in shown] == [[0]]
    run("psbt", "sign", "vault.json", "spend.psbt", "--key", "dave.key", "--yes", "-o", "d.psbt", code=2)
    run("vault", "verify", "vault.json", "--key", "dave.key", "--path", "recovery", "--yes")
    signed = run("psbt", "sign", "vault.json", "spend.psbt", "--key", "dave.key", "--yes", "-o", "d.psbt")
    assert "recovery 1 spend: it can be mined only once every input's coin is old enough" in signed.output
