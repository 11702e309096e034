"""Attacks found against the signer (issue: "The signer can still be fooled"), one test each.

Each test fails on the signer as it was before the fix: the attacker controls the coordinator,
the USB stick, or the vault file on the keyholder's laptop.
"""

import json

import pytest

from msigvault import Vault
from msigvault.errors import NetworkMismatch, PolicyError, RegistrationError, SignerRefusal
from msigvault.keys.cosigner import Cosigner
from msigvault.keys.paths import HARDENED
from msigvault.network import Network
from msigvault.policy.registration import REGISTRATION_BRANCH, Registration, RegisteredVault
from msigvault.policy.vault import NUMS_H, Deviation
from msigvault.psbt import fields as F
from msigvault.psbt.analyzer import analyze
from msigvault.psbt.common import encode_origin
from msigvault.psbt.signer import SignerPolicy, check, sign
from msigvault.script import compact_size
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo
from msigvault.vaultfile import VaultFile, VaultFileError, load_vault_file

NET = Network.REGTEST
SCRIPTS = ["sh", "sh-wsh", "wsh", "tr"]
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
TOP = HARDENED - 1  # 2^31 - 1, the highest unhardened index


def holders_for(n=3, prefix="attack"):
    return [TestKeyholder.from_label(f"{prefix}-{i}") for i in range(n)]


def make_vault(script, holders=None, **kw):
    holders = holders or holders_for()
    return Vault.multisig(2, [h.cosigner(script) for h in holders], script=script, network=NET, **kw), holders


def spend(vault, utxos, pay=150_000, change_index=0, fee_rate=2.0, **kw):
    return vault.create_psbt(utxos, [(EXTERNAL, pay)], fee_rate=fee_rate, change_index=change_index, **kw)


def registered(vault, holder, name="reserve", index_limit=1000):
    return RegisteredVault(vault, name, Registration.create(vault, holder.root, name=name, index_limit=index_limit))


# -- 1. change-index ransom through a planted coin ------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_planted_coin_at_a_far_index_cannot_carry_change_there(script):
    vault, holders = make_vault(script)
    planted = synthetic_utxo(vault, 1_000, index=TOP, seed="planted")
    honest = synthetic_utxo(vault, 300_000, index=3, seed="honest")
    psbt = spend(vault, [honest, planted], change_index=TOP)
    # before the fix: change at 2^31-1 was "within the gap" of the planted input and was signed
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.index-limit" and exc.value.output_index is not None and exc.value.limit == 1000
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, registered(vault, holders[0]), holders[0].root)
    assert exc.value.code == "signer.index-limit" and exc.value.output_index is not None and exc.value.limit == 1000


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_far_change_is_refused_even_when_inputs_are_near(script):
    vault, holders = make_vault(script)
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, index=1, seed="n")], change_index=5_000)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, registered(vault, holders[1]), holders[1].root)
    assert exc.value.code == "signer.index-limit"
    assert exc.value.output_index is not None
    assert exc.value.limit == 1000
    # the keyholder who registered a higher limit accepts it, and says where the change goes
    ok, summary = sign(psbt, registered(vault, holders[1], index_limit=10_000), holders[1].root)
    assert [o.vault_index for o in summary.outputs if o.kind == "change"] == [5_000]


def test_index_limit_is_bounded_and_signed():
    vault, holders = make_vault("wsh")
    with pytest.raises(RegistrationError, match="index limit") as exc:
        Registration.create(vault, holders[0].root, name="v", index_limit=2**31)
    assert exc.value.code == "signer.registration"
    reg = Registration.create(vault, holders[0].root, name="v", index_limit=100)
    raised = Registration(reg.fingerprint, 100_000, reg.signature)  # an attacker raises the limit
    with pytest.raises(RegistrationError, match="does not match this vault") as exc:
        RegisteredVault(vault, "v", raised)
    assert exc.value.code == "signer.registration"


# -- 2. one key, two networks -------------------------------------------------------------------

def test_test_network_vault_at_bip45_path_is_refused_without_override():
    holders = holders_for(prefix="bip45")
    cos = [Cosigner.from_root(h.root, "m/45h", NET) for h in holders]
    with pytest.raises(NetworkMismatch, match="unseparated-test-keys") as exc:
        Vault.multisig(2, cos, script="sh", network=NET)
    assert exc.value.code == "network.mismatch"
    accepted = Vault.multisig(2, cos, script="sh", network=NET, accept={"unseparated-test-keys"})
    assert accepted.deviations and "mainnet too" in accepted.deviations[0]
    assert Deviation.UNSEPARATED_TEST_KEYS in accepted.accept


@pytest.mark.parametrize("script", SCRIPTS)
def test_default_test_network_keys_never_equal_mainnet_keys(script):
    """For every script type the same seed gives different keys on mainnet and on test networks,
    so the regtest signer cannot sign a mainnet PSBT with its global xpubs stripped."""
    holders = holders_for(prefix="twonets")
    main_cos = [TestKeyholder(h.label, Network.MAINNET, h.root).cosigner(script) for h in holders]
    test_cos = [h.cosigner(script) for h in holders]
    assert {c.public_key for c in main_cos}.isdisjoint({c.public_key for c in test_cos})
    mainnet = Vault.multisig(2, main_cos, script=script, network=Network.MAINNET)
    regtest = Vault.multisig(2, test_cos, script=script, network=NET)
    psbt = spend(mainnet, [synthetic_utxo(mainnet, 300_000, index=0, seed="m")])
    for i in range(psbt.input_count):
        psbt.globals.delete_type(F.PSBT_GLOBAL_XPUB)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, regtest, holders[0].root)
    assert exc.value.code == "signer.foreign-input" and exc.value.input_index == 0 and exc.value.field is not None


def test_registration_binds_the_network():
    holders = holders_for(prefix="netbind")
    cos = [h.cosigner("wsh") for h in holders]
    regtest = Vault.multisig(2, cos, script="wsh", network=NET)
    testnet = Vault.multisig(2, cos, script="wsh", network=Network.TESTNET)
    reg = Registration.create(regtest, holders[0].root, name="v")
    with pytest.raises(RegistrationError) as exc:
        RegisteredVault(testnet, "v", reg)
    assert exc.value.code == "signer.registration"


# -- 4. fee burn without a payment --------------------------------------------------------------

@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_op_return_only_transaction_is_a_fee_burn(script):
    vault, holders = make_vault(script)
    utxo = synthetic_utxo(vault, 600_000, index=0, seed="burn")
    psbt = spend(vault, [utxo])
    v2 = psbt.to_v2()
    for o in range(v2.output_count):
        v2.outputs[o].set(F.PSBT_OUT_SCRIPT, b"", b"\x6a\x04burn")
        v2.outputs[o].set(F.PSBT_OUT_AMOUNT, b"", (0).to_bytes(8, "little"))
        v2.outputs[o].delete_type(F.PSBT_OUT_BIP32_DERIVATION)
        v2.outputs[o].delete_type(F.PSBT_OUT_TAP_BIP32_DERIVATION)
        v2.outputs[o].delete_type(F.PSBT_OUT_WITNESS_SCRIPT)
        v2.outputs[o].delete_type(F.PSBT_OUT_TAP_INTERNAL_KEY)
        v2.outputs[o].delete_type(F.PSBT_OUT_TAP_TREE)
    lax = SignerPolicy(max_fee_sats=10**9, max_fee_rate=10**9)
    with pytest.raises(SignerRefusal) as exc:
        sign(v2, vault, holders[0].root, policy=lax)
    assert exc.value.code == "signer.fee-limit" and exc.value.limit == 0.1


def test_fee_fraction_counts_everything_that_is_not_change():
    vault, holders = make_vault("wsh")
    utxo = synthetic_utxo(vault, 600_000, index=0, seed="frac")
    psbt = spend(vault, [utxo], pay=100_000, fee_rate=2.0)
    summary, _ = check(psbt, vault, fingerprint=holders[0].fingerprint)
    assert summary.sent_out == 100_000
    # a consolidation (only vault outputs) is measured against what it moves
    cons = vault.create_psbt([utxo], [(vault.address(7), 590_000)], fee_rate=2.0, change_index=0)
    summary, _ = check(cons, vault, fingerprint=holders[0].fingerprint)
    assert any("consolidation" in n for n in summary.notes)
    assert any(o.kind == "vault-receive" and o.vault_index == 7 for o in summary.outputs)
    assert "receive index 7" in summary.text()


# -- 7. the registered vault is authenticated -------------------------------------------------

def _file(tmp_path, vault, holders, who=(0,), name="reserve"):
    vf = VaultFile(vault, name)
    for i in who:
        vf = vf.with_registration(Registration.create(vault, holders[i].root, name=name))
    path = tmp_path / "vault.json"
    vf.save(path, overwrite=True)
    return path


@pytest.mark.parametrize("script", SCRIPTS)
def test_substituted_cosigner_with_fixed_policy_id_is_refused(tmp_path, script):
    vault, holders = make_vault(script)
    path = _file(tmp_path, vault, holders)
    # the attacker swaps bob for a key they hold and recomputes checksum and policy id
    mallory = TestKeyholder.from_label("mallory").cosigner(script)
    forged = Vault.multisig(2, [vault.cosigners[0], mallory, vault.cosigners[2]], script=script, network=NET)
    obj = json.loads(path.read_text())
    obj["descriptor"], obj["policy_id"] = forged.descriptor(), forged.policy_id
    path.write_text(json.dumps(obj))
    with pytest.raises(VaultFileError, match="does not match this vault") as exc:
        load_vault_file(path)
    assert exc.value.code == "vaultfile.invalid"
    assert exc.value.field == "registrations"
    assert exc.value.path is not None
    # dropping the registration does not help: the signer needs its own
    obj["registrations"] = []
    path.write_text(json.dumps(obj))
    vf = load_vault_file(path)
    with pytest.raises(RegistrationError, match="no registration by") as exc:
        vf.registered(holders[0].fingerprint)
    assert exc.value.code == "signer.registration" and exc.value.fingerprint == holders[0].fingerprint.hex()


def test_registration_cannot_be_forged_with_another_key(tmp_path):
    vault, holders = make_vault("wsh")
    # bob signs a registration and relabels it as alice's
    bobs = Registration.create(vault, holders[1].root, name="reserve")
    forged = Registration(holders[0].fingerprint, bobs.index_limit, bobs.signature)
    with pytest.raises(RegistrationError, match="does not match") as exc:
        RegisteredVault(vault, "reserve", forged)
    assert exc.value.code == "signer.registration"
    # and bob's genuine registration is not alice's: her signer refuses to use it
    with pytest.raises(SignerRefusal, match="not by this key") as exc:
        psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="x")])
        sign(psbt, RegisteredVault(vault, "reserve", bobs), holders[0].root)
    assert exc.value.code == "signer.registration"


def test_registration_key_is_a_public_child_of_the_account_key():
    vault, holders = make_vault("wsh")
    c = vault.cosigners[0]
    account = holders[0].root.derive(c.path)
    assert account.child(REGISTRATION_BRANCH).child(0).public_key == c.pubkey_at(REGISTRATION_BRANCH, 0)


def test_old_vault_files_are_refused_at_sign_time_with_how_to_register(tmp_path):
    vault, holders = make_vault("wsh")
    path = tmp_path / "old.json"
    obj = json.loads(VaultFile(vault, "old").to_json())
    del obj["registrations"], obj["accept"]
    path.write_text(json.dumps(obj))
    vf = load_vault_file(path)
    with pytest.raises(RegistrationError, match="msigvault vault verify") as exc:
        vf.registered(holders[0].fingerprint)
    assert exc.value.code == "signer.registration" and exc.value.fingerprint == holders[0].fingerprint.hex()


def test_renaming_the_vault_invalidates_registrations(tmp_path):
    vault, holders = make_vault("wsh")
    path = _file(tmp_path, vault, holders, who=(0, 1))
    obj = json.loads(path.read_text())
    obj["name"] = "someone else's vault"
    path.write_text(json.dumps(obj))
    with pytest.raises(VaultFileError) as exc:
        load_vault_file(path)
    assert exc.value.code == "vaultfile.invalid"
    assert exc.value.field == "registrations"
    assert exc.value.path is not None


def test_signing_summary_names_the_registered_vault():
    vault, holders = make_vault("wsh")
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="s")])
    _, summary = sign(psbt, registered(vault, holders[2], name="strategic reserve"), holders[2].root)
    assert "strategic reserve" in summary.text() and vault.policy_id in summary.text()


# -- 8. metadata-only change edits ------------------------------------------------------------

def _change(psbt):
    for o, m in enumerate(psbt.outputs):
        if m.items_of_type(F.PSBT_OUT_BIP32_DERIVATION) or m.items_of_type(F.PSBT_OUT_TAP_BIP32_DERIVATION):
            return o
    raise AssertionError("no change output")


METADATA_EDITS = {
    "sh": [(F.PSBT_OUT_REDEEM_SCRIPT, b"\x51")],
    "sh-wsh": [(F.PSBT_OUT_REDEEM_SCRIPT, b"\x00\x20" + bytes(32)), (F.PSBT_OUT_WITNESS_SCRIPT, b"\x51")],
    "wsh": [(F.PSBT_OUT_WITNESS_SCRIPT, b"\x52\xae"), (F.PSBT_OUT_REDEEM_SCRIPT, b"\x51")],
    "tr": [(F.PSBT_OUT_TAP_INTERNAL_KEY, bytes.fromhex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")),
           (F.PSBT_OUT_TAP_TREE, bytes([0, 0xC0, 1, 0x51])),
           (F.PSBT_OUT_WITNESS_SCRIPT, b"\x51")],
}


@pytest.mark.parametrize("script,field,value",
                         [(s, f, v) for s, edits in METADATA_EDITS.items() for f, v in edits])
def test_metadata_only_change_edits_are_refused(script, field, value):
    vault, holders = make_vault(script)
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="meta")])
    o = _change(psbt)
    psbt.outputs[o].set(field, b"", value)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.change-fraud" and exc.value.output_index == o


def test_taproot_leaf_hash_edit_is_refused():
    vault, holders = make_vault("tr")
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="leaf")])
    o = _change(psbt)
    m = psbt.outputs[o]
    xonly, value = m.items_of_type(F.PSBT_OUT_TAP_BIP32_DERIVATION)[0]
    m.set(F.PSBT_OUT_TAP_BIP32_DERIVATION, xonly, compact_size(1) + bytes(32) + value[33:])
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.change-fraud" and exc.value.output_index == o


# -- 9. small leaks and omissions -------------------------------------------------------------

def test_relative_timelock_is_shown():
    vault, holders = make_vault("wsh")
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="csv")]).to_v2()
    psbt.inputs[0].set(F.PSBT_IN_SEQUENCE, b"", (144).to_bytes(4, "little"))
    summary, _ = check(psbt, vault, fingerprint=holders[0].fingerprint)
    assert any("144 blocks" in n and "relative timelock" in n for n in summary.notes)
    assert "144 blocks" in summary.text()


def test_bip370_modifiable_flags_cleared_after_an_all_signature():
    vault, holders = make_vault("tr")
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="mod")], version=2)
    psbt.globals.set(F.PSBT_GLOBAL_TX_MODIFIABLE, b"", b"\x03")
    signed, _ = sign(psbt, vault, holders[0].root)
    assert signed.globals.get(F.PSBT_GLOBAL_TX_MODIFIABLE) == b"\x00"


def test_one_seed_in_two_slots_is_refused_unless_accepted():
    alice = TestKeyholder.from_label("two-slots")
    bob = TestKeyholder.from_label("two-slots-bob")
    cos = [alice.cosigner("wsh", 0), alice.cosigner("wsh", 1), bob.cosigner("wsh")]
    with pytest.raises(PolicyError, match="one keyholder alone counts twice") as exc:
        Vault.multisig(2, cos, script="wsh", network=NET)
    assert exc.value.code == "policy.invalid"
    v = Vault.multisig(2, cos, script="wsh", network=NET, accept={"shared-seed"})
    assert any("same master fingerprint" in d for d in v.deviations)
    with pytest.raises(PolicyError, match="unknown deviation") as exc:
        Vault.multisig(2, cos, script="wsh", network=NET, accept={"anything"})
    assert exc.value.code == "policy.invalid"


def test_sorted_must_be_a_bool():
    cos = [h.cosigner("wsh") for h in holders_for()]
    with pytest.raises(PolicyError, match="sorted must be True or False") as exc:
        Vault.multisig(2, cos, script="wsh", network=NET, sorted="no")
    assert exc.value.code == "policy.invalid"


# -- BDK's internal-key derivation (issue 12, item 1) ---------------------------------------

def _add_nums_entry(m, keytype, leaf_hashes=b""):
    n = len(leaf_hashes) // 32
    m.set(keytype, NUMS_H, compact_size(n) + leaf_hashes + encode_origin(bytes.fromhex("deadbeef"), ()))


def test_bdk_style_nums_derivation_is_accepted_and_ignored():
    vault, holders = make_vault("tr")
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="nums")])
    for m in psbt.inputs:
        _add_nums_entry(m, F.PSBT_IN_TAP_BIP32_DERIVATION)
    _add_nums_entry(psbt.outputs[_change(psbt)], F.PSBT_OUT_TAP_BIP32_DERIVATION)
    signed, summary = sign(psbt, vault, holders[0].root)
    assert [o.kind for o in summary.outputs].count("change") == 1
    assert analyze(signed, vault)["inputs"][0]["signed_by"] == [holders[0].fingerprint.hex()]


def test_nums_entry_with_leaf_hashes_is_refused():
    vault, holders = make_vault("tr")
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="nums2")])
    leaf = psbt.inputs[0].get(F.PSBT_IN_TAP_MERKLE_ROOT)
    _add_nums_entry(psbt.inputs[0], F.PSBT_IN_TAP_BIP32_DERIVATION, bytes(leaf))
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.foreign-input" and exc.value.input_index == 0


# -- analyze recognises change by script when derivations were cleared (issue 12, item 2) -----

@pytest.mark.parametrize("script", SCRIPTS)
def test_analyze_finds_change_by_script(script):
    vault, holders = make_vault(script)
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="clr")], change_index=4)
    o = _change(psbt)
    for t in (F.PSBT_OUT_BIP32_DERIVATION, F.PSBT_OUT_TAP_BIP32_DERIVATION, F.PSBT_OUT_WITNESS_SCRIPT,
              F.PSBT_OUT_REDEEM_SCRIPT, F.PSBT_OUT_TAP_TREE, F.PSBT_OUT_TAP_INTERNAL_KEY):
        psbt.outputs[o].delete_type(t)
    a = analyze(psbt, vault)
    line = a["outputs"][o]
    assert (line["kind"], line["vault_index"], line["proven_by"]) == ("change", 4, "script")
    assert a["spends_from_vault"] is True


def test_analyze_says_when_a_psbt_does_not_spend_from_the_vault():
    vault, _ = make_vault("wsh")
    other, _ = make_vault("wsh", holders_for(prefix="other"))
    psbt = spend(other, [synthetic_utxo(other, 300_000, seed="o")])
    a = analyze(psbt, vault)
    assert a["spends_from_vault"] is False and a["problems"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_analyze_verifies_final_fields_instead_of_trusting_them(script):
    from msigvault.psbt.combiner import combine
    from msigvault.psbt.finalizer import finalize

    vault, holders = make_vault(script)
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="final")])
    final = finalize(combine([sign(psbt, vault, h.root)[0] for h in holders[:2]], vault), vault)
    good = analyze(final, vault)
    assert good["problems"] == [] and good["next_role"] == "extractor"
    assert good["inputs"][0]["vault_index"] == [0, 0]
    t = F.PSBT_IN_FINAL_SCRIPTSIG if script == "sh" else F.PSBT_IN_FINAL_SCRIPTWITNESS
    value = bytes(final.inputs[0].get(t))
    final.inputs[0].set(t, b"", value[:-40] + bytes([value[-40] ^ 1]) + value[-39:])
    bad = analyze(final, vault)
    assert any("input 0" in p and "final scriptSig/witness" in p for p in bad["problems"]), bad["problems"]


def test_prepared_request_signs_what_was_shown():
    from msigvault.psbt.signer import prepare

    vault, holders = make_vault("wsh")
    psbt = spend(vault, [synthetic_utxo(vault, 300_000, seed="prep")])
    request = prepare(psbt, registered(vault, holders[0]), fingerprint=holders[0].fingerprint)
    assert not request.already_signed
    # the caller changes the PSBT after the review: the request still signs what was checked
    psbt.outputs[0].set(F.PSBT_OUT_WITNESS_SCRIPT, b"", b"\x51")
    signed, summary = request.sign(holders[0].root)
    assert summary == request.summary.__class__(**{**request.summary.__dict__, "signed_inputs": 1})
    assert analyze(signed, vault)["inputs"][0]["signed_by"] == [holders[0].fingerprint.hex()]
    again = prepare(signed, registered(vault, holders[0]), fingerprint=holders[0].fingerprint)
    assert again.already_signed
    with pytest.raises(SignerRefusal, match="not for this key|not by this key"):
        request.sign(holders[1].root)


def test_vault_file_with_more_registrations_than_cosigners_is_refused_before_verifying(tmp_path, monkeypatch):
    vault, holders = make_vault("wsh")
    path = _file(tmp_path, vault, holders, who=(0,))
    obj = json.loads(path.read_text())
    obj["registrations"] = obj["registrations"] * 5000  # a hostile file: thousands of records
    path.write_text(json.dumps(obj))
    calls = []
    monkeypatch.setattr(Registration, "verify", lambda self, *a, **k: calls.append(1))
    with pytest.raises(VaultFileError, match="at most one registration per keyholder"):
        load_vault_file(path)
    assert calls == []  # refused by counting, before any signature check
