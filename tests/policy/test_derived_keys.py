"""Derived-key records (policy/derived.py): a vault's child keys kept between processes, signed.

The attacker controls the disk or the USB stick that holds the record, not the keyholder's key:
every record that is not exactly one the trusted key signed for this vault is refused with
DerivedKeysError and loads nothing, and a loaded record changes no result, only the cost.
"""

import hashlib
import os
from functools import cache

import pytest
from embit.hashes import tagged_hash
from embit.util import secp256k1 as _secp
from hypothesis import given
from hypothesis import strategies as st

from msigvault import Vault
from msigvault.errors import ChangeFraud, DerivedKeysError, RegistrationError
from msigvault.keys.cosigner import Cosigner
from msigvault.network import Network
from msigvault.policy import derived
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.policy.registration import Registration, RegisteredVault
from msigvault.psbt import fields as F
from msigvault.psbt.signer import sign
from msigvault.secp import pubkey_create
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
SECRET = hashlib.sha256(b"msigvault test: the derived-key record's signer").digest()
TRUSTED = pubkey_create(SECRET)[1:]
ATTACKER = hashlib.sha256(b"msigvault test: mallory").digest()
ATTACKER_KEY = pubkey_create(ATTACKER)[1:]
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
HEAD, TAIL = 6 + 32 + 1 + 4, 32 + 64  # the layout in derived.py's docstring
TOP = 2**31 - 1

IN_RECORD = [(0, 0), (0, 1), (0, 7), (1, 0), (1, 3)]
OUT_OF_RECORD = [(0, 2), (1, 1), (0, 999), (1, TOP)]


@cache
def holders(prefix, n=3):
    return tuple(TestKeyholder.from_label(f"dk-{prefix}-{i}") for i in range(n))


def plain(script, prefix="p"):
    return Vault.multisig(2, [h.cosigner(script) for h in holders(prefix)], script=script, network=NET)


def with_recovery(script):
    recovery = [Recovery(1, [h.cosigner(script) for h in holders("r", 2)], Timelock.older(52_560))]
    return Vault.multisig(2, [h.cosigner(script) for h in holders("p")], script=script, network=NET,
                          recovery=recovery)


KINDS = {
    "sh": lambda: plain("sh"),
    "sh-wsh": lambda: plain("sh-wsh"),
    "wsh": lambda: plain("wsh"),
    "tr": lambda: plain("tr"),
    "wsh-recovery": lambda: with_recovery("wsh"),
    "tr-recovery": lambda: with_recovery("tr"),
}


def fresh(vault):
    """The same vault in a new object, as another process reads it from the vault file."""
    other = Vault.from_descriptor(vault.descriptor(), network=NET)
    assert other == vault and other is not vault
    return other


def resign(body, secret=SECRET):
    """``body`` (everything before the signer key) signed as derived.dump signs: a record whose
    signature is valid, to reach the checks behind it."""
    signed = body + pubkey_create(secret)[1:]
    pair = _secp.keypair_create(secret)
    return signed + _secp.schnorrsig_sign(tagged_hash(derived.TAG, signed), pair, None, os.urandom(32))


def entry(branch, index, keys):
    return bytes([branch]) + index.to_bytes(4, "big") + b"".join(keys)


def head(vault, count, n=None):
    n = len(vault.cosigners) if n is None else n
    return derived.MAGIC + bytes.fromhex(vault.policy_id) + bytes([n]) + count.to_bytes(4, "big")


def cosigner_of(vault, holder):
    return next(c for c in vault.cosigners if c.fingerprint == holder.fingerprint)


def count_child_steps(monkeypatch):
    """Count BIP32 public child steps of every cosigner from now on."""
    calls = []
    original = Cosigner.pubkey_at

    def counting(self, branch, index):
        calls.append((branch, index))
        return original(self, branch, index)

    monkeypatch.setattr(Cosigner, "pubkey_at", counting)
    return calls


def refused(vault, data, trusted_key=TRUSTED, match=None):
    with pytest.raises(DerivedKeysError, match=match) as exc:
        vault.load_derived_keys(data, trusted_key=trusted_key)
    assert exc.value.code == "policy.derived-keys"
    return exc.value


def assert_nothing_loaded(vault):
    """``vault`` (never used to derive) holds no loaded keys: its own record is empty."""
    assert fresh(vault).load_derived_keys(vault.dump_derived_keys(secret=SECRET), trusted_key=TRUSTED) == 0


@cache
def small_record():
    """A wsh 2-of-3 record of two entries (347 bytes) and its vault."""
    vault = plain("wsh")
    vault.derive_branch(0, 0)
    vault.derive_branch(1, 0)
    data = vault.dump_derived_keys(secret=SECRET)
    assert len(data) == HEAD + 2 * (5 + 33 * 3) + TAIL
    return vault, data


# -- round trip ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KINDS))
def test_a_loaded_record_derives_every_script_as_from_scratch_without_child_steps(kind, monkeypatch):
    vault = KINDS[kind]()
    for b, i in IN_RECORD:
        vault.derive_branch(b, i)
    data = vault.dump_derived_keys(secret=SECRET)
    n = len(vault.cosigners)
    assert len(data) == HEAD + len(IN_RECORD) * (5 + 33 * n) + TAIL
    assert data.startswith(derived.MAGIC + bytes.fromhex(vault.policy_id) + bytes([n]))
    assert data[HEAD - 4:HEAD] == len(IN_RECORD).to_bytes(4, "big") and data[-96:-64] == TRUSTED
    expected = {bi: fresh(vault).derive_branch(*bi) for bi in IN_RECORD + OUT_OF_RECORD}

    loaded = fresh(vault)
    assert loaded.load_derived_keys(data, trusted_key=TRUSTED) == len(IN_RECORD)
    steps = count_child_steps(monkeypatch)
    for bi in IN_RECORD:
        assert loaded.derive_branch(*bi) == expected[bi]  # every field: scripts, keys, leaves, address
    assert steps == []  # the record replaced the child steps
    for bi in OUT_OF_RECORD:
        assert loaded.derive_branch(*bi) == expected[bi]
    assert steps == [bi for bi in OUT_OF_RECORD for _ in range(n)]  # outside it: derived as before
    # the loaded vault's own record holds what it loaded and what it derived since
    again = fresh(vault)
    assert again.load_derived_keys(loaded.dump_derived_keys(secret=SECRET), trusted_key=TRUSTED) == \
        len(IN_RECORD) + len(OUT_OF_RECORD)


def strip_tap_signatures(psbt):
    copy = psbt.copy()
    for m in copy.inputs:
        m.delete_type(F.PSBT_IN_TAP_SCRIPT_SIG)
    return copy


@pytest.mark.parametrize("kind", list(KINDS))
def test_signing_with_a_loaded_record_gives_the_same_psbt(kind, monkeypatch):
    vault = KINDS[kind]()
    root = holders("p")[0].root
    utxos = [synthetic_utxo(vault, 100_000 + i, branch=b, index=i, seed=kind) for b, i in [(0, 0), (0, 7), (1, 3)]]
    psbt = vault.create_psbt(utxos, [(EXTERNAL, 250_000)], fee_rate=2.0, change_index=4)
    record = vault.dump_derived_keys(secret=SECRET)  # the coins' and the change's keys
    loaded = fresh(vault)
    assert loaded.load_derived_keys(record, trusted_key=TRUSTED) == 4

    by_scratch, summary_scratch = sign(psbt, fresh(vault), root)
    steps = count_child_steps(monkeypatch)
    by_record, summary_record = sign(psbt, loaded, root)
    assert steps == []  # no cosigner key was derived again
    assert summary_record.to_dict() == summary_scratch.to_dict()
    assert summary_record.signed_inputs == 3
    assert [o.vault_index for o in summary_record.outputs if o.kind == "change"] == [4]
    if vault.script != "tr":  # RFC 6979 ECDSA: the same bytes
        assert by_record.serialize() == by_scratch.serialize()
    else:  # BIP340 signatures are randomised: the same PSBT but for them, and each of them valid
        assert strip_tap_signatures(by_record).serialize() == strip_tap_signatures(by_scratch).serialize()
        assert [sorted(k for k, _ in m.items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)) for m in by_record.inputs] == \
            [sorted(k for k, _ in m.items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)) for m in by_scratch.inputs]
        assert all(m.items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG) for m in by_record.inputs)
        fresh(vault).combine([by_record])  # the combiner verifies every signature (CombineError otherwise)


def test_a_keyholders_record_is_signed_by_their_registration_key_and_checked_without_it():
    vault = plain("wsh")
    alice, bob, _ = holders("p")
    reg_a = Registration.create(vault, alice.root, name="reserve")
    mine = RegisteredVault(vault, "reserve", reg_a)
    vault.derive_branch(0, 3)
    data = mine.dump_derived_keys(alice.root)
    assert data[-96:-64] == derived.keyholder_trusted_key(cosigner_of(vault, alice))
    # another process: checked against public data only (no root), before anything is unlocked
    assert RegisteredVault(fresh(vault), "reserve", reg_a).load_derived_keys(data) == 1
    # bob's registration key is not alice's: her record is not his
    reg_b = Registration.create(vault, bob.root, name="reserve")
    with pytest.raises(DerivedKeysError, match="not signed by the key"):
        RegisteredVault(fresh(vault), "reserve", reg_b).load_derived_keys(data)
    # only alice's unlocked key writes her record
    with pytest.raises(RegistrationError):
        mine.dump_derived_keys(bob.root)


# -- refusals ------------------------------------------------------------------------------------

def test_every_single_byte_flip_is_refused_and_loads_nothing():
    vault, data = small_record()
    target = fresh(vault)
    for pos in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            mutated = bytearray(data)
            mutated[pos] ^= mask
            refused(target, bytes(mutated))
    assert_nothing_loaded(target)
    assert fresh(vault).load_derived_keys(data, trusted_key=TRUSTED) == 2  # the original still loads


def test_every_truncation_and_any_appended_bytes_are_refused():
    vault, data = small_record()
    target = fresh(vault)
    for length in range(len(data)):
        refused(target, data[:length])
    for extra in (b"\x00", os.urandom(64), data, data[HEAD:]):
        refused(target, data + extra)
        refused(target, extra + data)
    assert_nothing_loaded(target)


def test_the_right_signer_key_with_altered_keys_is_refused():
    vault, data = small_record()
    altered = bytearray(data)
    altered[HEAD + 5 + 33 + 10] ^= 0x04  # inside entry 0's second key; the signer key is kept
    assert altered[-96:-64] == TRUSTED
    refused(fresh(vault), bytes(altered), match="not signed by the key it must be")


def test_an_attacker_who_plants_keys_and_signs_with_their_own_key_is_refused():
    vault, data = small_record()
    mallory = holders("m")
    body = bytearray(data[:-96])
    body[HEAD + 5:HEAD + 5 + 99] = b"".join(m.cosigner("wsh").pubkey_at(0, 0) for m in mallory)
    planted = resign(bytes(body), ATTACKER)
    target = fresh(vault)
    refused(target, planted, match="not signed by the key it must be")
    # with their key put in place of the trusted one, the tail no longer matches either
    forged = planted[:-96] + TRUSTED + planted[-64:]
    refused(target, forged, match="not signed by the key it must be")
    assert_nothing_loaded(target)
    assert target.derive(0) == fresh(vault).derive(0)
    # the check is the trusted key, nothing else: trusting mallory's key loads mallory's keys
    believer = fresh(vault)
    assert believer.load_derived_keys(planted, trusted_key=ATTACKER_KEY) == 2
    assert believer.derive(0) != vault.derive(0)


def test_another_vaults_record_is_refused_even_signed_by_the_same_key():
    alice, bob, carol = holders("p")
    big = Vault.multisig(2, [h.cosigner("wsh") for h in (alice, bob, carol)], script="wsh", network=NET)
    small = Vault.multisig(2, [h.cosigner("wsh") for h in (alice, bob)], script="wsh", network=NET)
    small.derive(0)
    refused(fresh(big), small.dump_derived_keys(secret=SECRET), match="another vault")
    # alice's registration key is the same in both vaults (one account key): the policy id decides
    reg_small = Registration.create(small, alice.root, name="small")
    record = RegisteredVault(small, "small", reg_small).dump_derived_keys(alice.root)
    mine = RegisteredVault(fresh(big), "big", Registration.create(big, alice.root, name="big"))
    assert derived.keyholder_trusted_key(cosigner_of(big, alice)) == record[-96:-64]
    with pytest.raises(DerivedKeysError, match="another vault"):
        mine.load_derived_keys(record)
    # the same holds between two vaults of the same keys and another threshold or script type
    for other in (Vault.multisig(3, big.cosigners, script="wsh", network=NET),
                  Vault.multisig(2, [h.cosigner("wsh") for h in (alice, bob, carol)], script="wsh",
                                 sorted=False, network=NET)):
        other.derive(0)
        refused(fresh(big), other.dump_derived_keys(secret=SECRET), match="another vault")


def valid_keys(vault, branch, index):
    return tuple(c.pubkey_at(branch, index) for c in vault.cosigners)


@pytest.mark.parametrize("case", ["count+1", "count-1", "count-huge", "cosigners", "magic", "duplicate",
                                  "branch 2", "branch 255", "index 2^31", "index 2^32-1", "key 04", "key 00",
                                  "key 05"])
def test_malformed_records_signed_by_the_trusted_key_are_refused_whole(case):
    """A signed record is still parsed strictly, and all or nothing: entry 0 plants keys at
    receive index 0, the broken part comes after it, and receive index 0 stays the vault's."""
    vault = plain("wsh")
    planted = entry(0, 0, valid_keys(plain("wsh", "m"), 0, 0))
    good = entry(1, 5, valid_keys(vault, 1, 5))
    keys = valid_keys(vault, 0, 9)
    bodies = {
        "count+1": head(vault, 3) + planted + good,
        "count-1": head(vault, 1) + planted + good,
        "count-huge": head(vault, 2**32 - 1) + planted + good,
        "cosigners": head(vault, 2, n=2) + entry(0, 0, keys[:2]) + entry(0, 1, keys[:2]) + b"\x00" * 66,
        "magic": b"msvdk\x02" + head(vault, 2)[6:] + planted + good,
        "duplicate": head(vault, 3) + planted + good + good,
        "branch 2": head(vault, 2) + planted + entry(2, 5, keys),
        "branch 255": head(vault, 2) + planted + entry(255, 5, keys),
        "index 2^31": head(vault, 2) + planted + entry(0, 2**31, keys),
        "index 2^32-1": head(vault, 2) + planted + entry(1, 2**32 - 1, keys),
        "key 04": head(vault, 2) + planted + entry(0, 9, (keys[0], b"\x04" + keys[1][1:], keys[2])),
        "key 00": head(vault, 2) + planted + entry(0, 9, (keys[0], keys[1], b"\x00" * 33)),
        "key 05": head(vault, 2) + planted + entry(0, 9, (b"\x05" + keys[0][1:], keys[1], keys[2])),
    }
    target = fresh(vault)
    error = refused(target, resign(bodies[case]))
    assert "delete" in str(error) or case == "magic"
    assert_nothing_loaded(target)
    assert target.derive(0) == vault.derive(0)
    # the control: the same record without the broken part loads, planted key and all
    control = fresh(vault)
    assert control.load_derived_keys(resign(head(vault, 2) + planted + good), trusted_key=TRUSTED) == 2
    assert control.derive(0) != vault.derive(0) and control.derive(5, change=True) == vault.derive(5, change=True)


def test_oversized_data_is_refused_before_any_hashing(monkeypatch):
    vault, data = small_record()

    def no_hashing(*args):
        raise AssertionError("hashed an oversized record")

    monkeypatch.setattr(derived, "tagged_hash", no_hashing)
    huge = data[:-96] + b"\x00" * (derived.MAX_BYTES - len(data) + 1) + data[-96:]
    assert len(huge) == derived.MAX_BYTES + 1
    error = refused(fresh(vault), huge, match="more than")
    assert "delete it" in str(error)
    refused(fresh(vault), memoryview(huge), match="more than")


@pytest.mark.parametrize("data", ["msvdk", None, 7, [1, 2], {"a": 1}], ids=repr)
def test_data_that_is_not_bytes_is_refused(data):
    refused(plain("wsh"), data, match="is bytes")


@pytest.mark.parametrize("key", [None, "00" * 32, TRUSTED[:31], b"\x02" + TRUSTED, 5, memoryview(TRUSTED)],
                         ids=lambda k: f"{type(k).__name__}-{len(k) if hasattr(k, '__len__') else ''}")
def test_a_trusted_key_that_is_not_32_bytes_is_refused(key):
    vault, data = small_record()
    error = refused(fresh(vault), data, trusted_key=key, match="32-byte x-only")
    assert error.field == "trusted_key"


def test_a_trusted_key_off_the_curve_refuses_the_record():
    vault, data = small_record()
    off = bytes(32)  # x = 0 is not on secp256k1
    refused(fresh(vault), data[:-96] + off + data[-64:], trusted_key=off, match="not signed by the key")


@pytest.mark.parametrize("secret", [None, "11" * 32, SECRET[:31], SECRET + b"\x00", 5, bytes(32), b"\xff" * 32],
                         ids=lambda s: f"{type(s).__name__}-{len(s) if hasattr(s, '__len__') else ''}-"
                                       f"{s[:1].hex() if isinstance(s, bytes) else ''}")
def test_a_secret_that_is_not_a_valid_key_is_refused(secret):
    vault = plain("wsh")
    vault.derive(0)
    with pytest.raises(DerivedKeysError) as exc:
        vault.dump_derived_keys(secret=secret)
    assert exc.value.field == "secret"
    assert SECRET.hex() not in str(exc.value)


def test_a_vault_too_large_for_a_record_is_refused_with_the_error_not_a_crash():
    """The record counts cosigners in one byte; a tr vault may have 999 (before the fix: ValueError)."""
    big = Vault.multisig(2, [h.cosigner("tr") for h in holders("big", 256)], script="tr", network=NET)
    big.derive(0)
    with pytest.raises(DerivedKeysError, match="at most 255 cosigners") as exc:
        big.dump_derived_keys(secret=SECRET)
    assert exc.value.limit == 255
    # the largest that fits writes and reads back
    fits = Vault.multisig(2, [h.cosigner("tr") for h in holders("big", 256)[:255]], script="tr", network=NET)
    fits.derive(0)
    assert fresh(fits).load_derived_keys(fits.dump_derived_keys(secret=SECRET), trusted_key=TRUSTED) == 1


# -- the attack the signature stops, end to end ----------------------------------------------------

@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_a_planted_change_key_record_is_refused_and_the_signer_still_finds_change_fraud(script):
    vault = plain(script)
    alice = holders("p")[0]
    reg = Registration.create(vault, alice.root, name="reserve")
    # the attacker's record maps change index 5 to their own keys, signed by their own key
    theirs = tuple(m.cosigner(script).pubkey_at(1, 5) for m in holders("m"))
    evil = derived.dump(vault, {(1, 5): theirs}, ATTACKER)
    # a copy of the vault that believes it builds the spend: the "change" pays the attacker
    believer = fresh(vault)
    assert believer.load_derived_keys(evil, trusted_key=ATTACKER_KEY) == 1
    coin = synthetic_utxo(vault, 300_000, index=2, seed=f"planted-{script}")
    psbt = believer.create_psbt([coin], [(EXTERNAL, 100_000)], fee_rate=2.0, change_index=5)
    assert vault.derive(5, change=True).script_pubkey not in [psbt.script(o) for o in range(psbt.output_count)]
    # the control: a signer that took the record would call the attacker's output change
    _, fooled = sign(psbt, RegisteredVault(believer, "reserve", reg), alice.root)
    assert [(o.kind, o.vault_index) for o in fooled.outputs if o.kind == "change"] == [("change", 5)]
    # the keyholder's own signer refuses the record, so the output is what it is: change fraud
    mine = RegisteredVault(fresh(vault), "reserve", reg)
    with pytest.raises(DerivedKeysError, match="not signed by the key"):
        mine.load_derived_keys(evil)
    with pytest.raises(ChangeFraud) as exc:
        sign(psbt, mine, alice.root)
    assert exc.value.code == "signer.change-fraud"


# -- fuzzing and cost ------------------------------------------------------------------------------

def load_or_refuse(vault, data, trusted_key=TRUSTED):
    """Load ``data``: a DerivedKeysError or a count, never another exception."""
    try:
        return vault.load_derived_keys(data, trusted_key=trusted_key)
    except DerivedKeysError as e:
        assert e.code == "policy.derived-keys"
        return None


@given(st.one_of(st.binary(max_size=1_000),
                 st.binary(max_size=600).map(lambda b: derived.MAGIC + b),
                 st.binary(min_size=HEAD + TAIL, max_size=600).map(lambda b: derived.MAGIC + b[6:-96] + TRUSTED
                                                                   + b[-64:])))
def test_random_bytes_are_refused(data):
    vault = small_record()[0]
    assert load_or_refuse(fresh(vault), data) is None


mutation = st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]),
                     st.integers(0, 10_000), st.integers(0, 255), st.binary(max_size=40))


def mutate(data, steps):
    data = bytearray(data)
    for kind, at, byte, chunk in steps:
        at = at % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= byte or 1
        elif kind == "set" and at < len(data):
            data[at] = byte
        elif kind == "insert":
            data[at:at] = chunk or bytes([byte])
        elif kind == "delete":
            del data[at:at + 1 + byte % 8]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at + len(chunk)] = chunk
    return bytes(data)


@given(st.lists(mutation, min_size=1, max_size=6))
def test_mutated_records_are_refused_unless_unchanged(steps):
    vault, data = small_record()
    mutated = mutate(data, steps)
    assert load_or_refuse(fresh(vault), mutated) == (2 if mutated == data else None)


@given(st.lists(mutation, min_size=1, max_size=6))
def test_mutated_and_resigned_records_load_only_well_formed_entries(steps):
    """The attacker holding the signing key (the parser behind the signature): either
    DerivedKeysError or entries that derive scripts, never another exception."""
    vault, data = small_record()
    body = mutate(data[:-96], steps)
    target = fresh(vault)
    count = load_or_refuse(target, resign(body))
    if count is None:
        assert_nothing_loaded(target)
        return
    n = len(vault.cosigners)
    assert len(body) == HEAD + count * (5 + 33 * n) and body[HEAD - 4:HEAD] == count.to_bytes(4, "big")
    for at in range(HEAD, len(body), 5 + 33 * n):
        branch, index = body[at], int.from_bytes(body[at + 1:at + 5], "big")
        assert branch in (0, 1) and index < 2**31
        d = target.derive_branch(branch, index)
        assert sorted(d.pubkeys) == sorted(body[at + 5 + 33 * k:at + 38 + 33 * k] for k in range(n))


def test_sixteen_mib_of_garbage_costs_at_most_one_hash(monkeypatch):
    """Linear cost, counted rather than timed: 16 MiB of garbage is refused before any hashing
    unless it names the trusted key, and then after one hash of the record."""
    vault = small_record()[0]
    garbage = os.urandom(derived.MAX_BYTES)
    hashed = []
    original = derived.tagged_hash

    def counting(tag, data):
        hashed.append(len(data))
        return original(tag, data)

    monkeypatch.setattr(derived, "tagged_hash", counting)
    refused(fresh(vault), garbage, match="not a msigvault derived-key record")
    refused(fresh(vault), derived.MAGIC + garbage[6:], match="not signed")
    assert hashed == []  # no magic, or another signer's key: refused unread
    # the right magic and the trusted key at the tail: the whole record is hashed once, then refused
    refused(fresh(vault), derived.MAGIC + garbage[6:-96] + TRUSTED + garbage[-64:], match="not signed")
    assert hashed == [derived.MAX_BYTES - 64]


@cache
def maximal():
    """More synthetic entries than fit, and the record dump makes of them."""
    vault = plain("wsh")
    room = (derived.MAX_BYTES - HEAD - TAIL) // (5 + 33 * 3)
    rows = {(b, i): tuple(bytes([2 + (i & 1)]) + hashlib.sha256(b"%d/%d/%d" % (b, i, k)).digest() for k in range(3))
            for b in (1, 0) for i in range(room // 2 + 1_000)}
    return vault, room, rows, derived.dump(vault, rows, SECRET)


def test_dump_writes_at_most_max_bytes_lowest_entries_first():
    vault, room, rows, data = maximal()
    assert len(rows) > room
    assert len(data) <= derived.MAX_BYTES and len(data) == HEAD + room * (5 + 33 * 3) + TAIL
    assert derived.MAX_BYTES - len(data) < 5 + 33 * 3  # full: another entry would not fit
    loaded = derived.load(vault, data, TRUSTED)
    assert list(loaded) == sorted(rows)[:room]  # every receive index first, then the lowest change ones
    assert all(loaded[k] == rows[k] for k in list(loaded)[:: 997])


def test_a_maximal_record_loads_and_its_rows_are_used():
    vault, room, rows, data = maximal()  # its load time is in docs/performance.md (bench/psbt.py)
    target = fresh(vault)
    assert target.load_derived_keys(data, trusted_key=TRUSTED) == room
    assert target.derive(5).pubkeys == tuple(sorted(rows[(0, 5)]))


# -- what a dump vouches for ---------------------------------------------------------------------

def test_a_dump_resigns_only_keys_derived_here_or_loaded_under_the_same_key():
    """Keys loaded from a record signed by another key (a coordinator's, say) are used, but a
    dump signed with this key does not vouch for them: only keys this object computed itself,
    and keys from records of the same signer, go into it."""
    vault = plain("wsh")
    vault.derive_branch(0, 4)
    theirs = vault.dump_derived_keys(secret=ATTACKER)  # another signer's record of (0, 4)
    mine = fresh(vault)
    mine.derive_branch(0, 5)
    own = mine.dump_derived_keys(secret=SECRET)  # (0, 5), signed by us
    target = fresh(vault)
    assert target.load_derived_keys(theirs, trusted_key=ATTACKER_KEY) == 1
    assert target.load_derived_keys(own, trusted_key=TRUSTED) == 1
    target.derive_branch(0, 4)  # from the other signer's record
    target.derive_branch(0, 6)  # computed here
    redump = derived.load(vault, target.dump_derived_keys(secret=SECRET), TRUSTED)
    assert sorted(redump) == [(0, 5), (0, 6)]
    assert sorted(derived.load(vault, target.dump_derived_keys(secret=ATTACKER), ATTACKER_KEY)) == [(0, 4), (0, 6)]
