"""The Combiner and Finalizer verify, or refuse, everything that can end up in the transaction
(msigvault issue 11 item 5): final scriptSig/witness, taproot key-path signatures, MuSig2 fields,
lock times spread over copies.

Each adversarial case would have been accepted by the combiner before this check (it merged final
fields unverified and the finalizer skipped inputs already final); where the mutation is
consensus-invalid, libbitcoinkernel confirms that the transaction would have been rejected.
"""

import pytest

from msigvault import Vault
from msigvault.errors import CombineError, ExtractError, FinalizeError
from msigvault.network import Network
from msigvault.psbt import fields as F
from msigvault.psbt import hazmat
from msigvault.psbt.combiner import combine, merge
from msigvault.psbt.extractor import extract
from msigvault.psbt.finalizer import finalize
from msigvault.psbt.satisfaction import witness_bytes
from msigvault.psbt.signer import sign
from msigvault.script import push_data
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
SCRIPTS = ["sh", "sh-wsh", "wsh", "tr"]
CURVE_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def make(script, m=2, n=3, inputs=2):
    holders = [TestKeyholder.from_label(f"combine-verify-{i}") for i in range(n)]
    vault = Vault.multisig(m, [h.cosigner(script) for h in holders], script=script, network=NET)
    utxos = [synthetic_utxo(vault, 100_000, index=i) for i in range(inputs)]
    psbt = vault.create_psbt(utxos, [(EXTERNAL, 100_000 * inputs - 50_000)], fee_rate=3.0, change_index=0)
    return vault, holders, psbt


def ceremony(script, signers=(0, 1)):
    vault, holders, psbt = make(script)
    parts = [sign(psbt, vault, h.root)[0] for h in holders]
    final = finalize(combine([parts[k] for k in signers], vault), vault)
    return vault, holders, psbt, parts, final


def read_final(p, i=0):
    """(scriptSig pushes, witness items) of a final input."""
    m = p.inputs[i]
    ss = m.get(F.PSBT_IN_FINAL_SCRIPTSIG)
    wit = m.get(F.PSBT_IN_FINAL_SCRIPTWITNESS)
    pushes = _pushes(bytes(ss)) if ss else None
    items = [bytes(x) for x in F.read_witness_stack(bytes(wit), 0, len(wit), "w")[0]] if wit else None
    return pushes, items


def _pushes(script):
    out, pos = [], 0
    while pos < len(script):
        op = script[pos]
        if op == 0:
            out.append(b"")
            pos += 1
        elif op <= 0x4B:
            out.append(script[pos + 1:pos + 1 + op])
            pos += 1 + op
        elif op == 0x4C:
            out.append(script[pos + 2:pos + 2 + script[pos + 1]])
            pos += 2 + script[pos + 1]
        elif op == 0x4D:
            n = int.from_bytes(script[pos + 1:pos + 3], "little")
            out.append(script[pos + 3:pos + 3 + n])
            pos += 3 + n
        else:
            raise AssertionError(f"unexpected opcode {op:#x} in a scriptSig our finalizer wrote")
    return out


def set_final(p, i=0, *, script_sig=None, witness=None):
    """A copy of ``p`` whose input ``i`` has exactly these final fields (None: absent)."""
    q = p.copy()
    m = q.inputs[i]
    m.delete_type(F.PSBT_IN_FINAL_SCRIPTSIG)
    m.delete_type(F.PSBT_IN_FINAL_SCRIPTWITNESS)
    if script_sig is not None:
        m.set(F.PSBT_IN_FINAL_SCRIPTSIG, b"", script_sig)
    if witness is not None:
        m.set(F.PSBT_IN_FINAL_SCRIPTWITNESS, b"", witness)
    return q


def with_stack(p, script, stack):
    """``p`` with input 0's signature stack ([dummy, sigs..., script] or the tr witness) replaced."""
    if script == "sh":
        return set_final(p, script_sig=b"".join(push_data(x) for x in stack))
    ss = p.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTSIG)
    return set_final(p, script_sig=bytes(ss) if ss is not None else None, witness=witness_bytes(stack))


def stack_of(p, script):
    pushes, items = read_final(p)
    return list(pushes if script == "sh" else items)


def flip(b, at=10):
    return b[:at] + bytes([b[at] ^ 1]) + b[at + 1:]


def high_s(sig):
    from embit.util import secp256k1 as secp

    compact = secp.ecdsa_signature_serialize_compact(secp.ecdsa_signature_parse_der(sig[:-1]))
    r, s = compact[:32], int.from_bytes(compact[32:], "big")
    der = secp.ecdsa_signature_serialize_der(secp.ecdsa_signature_parse_compact(r + (CURVE_N - s).to_bytes(32, "big")))
    return der + sig[-1:]


# mutations of a correct final: (name, function(stack) -> stack, consensus-invalid?)
ECDSA_MUTATIONS = [
    ("flipped signature bit", lambda s: [s[0], flip(s[1])] + s[2:], True),
    ("one signature short", lambda s: [s[0], s[1], s[-1]], True),
    ("signatures in the wrong order", lambda s: [s[0], s[2], s[1], s[-1]], True),
    ("non-empty dummy", lambda s: [b"\x01"] + s[1:], True),  # NULLDUMMY
    ("extra item", lambda s: s + [b"\x01"], True),
    ("high S signature", lambda s: [s[0], high_s(s[1])] + s[2:], False),  # policy only (LOW_S)
    ("wrong sighash byte", lambda s: [s[0], s[1][:-1] + b"\x81"] + s[2:], True),
]
def _first_sig(s):
    return next(i for i, x in enumerate(s[:-2]) if x)


def _tap_flip(s):
    s = list(s)
    s[_first_sig(s)] = flip(s[_first_sig(s)])
    return s


def _tap_drop(s):
    s = list(s)
    s[_first_sig(s)] = b""
    return s


TAP_MUTATIONS = [  # s = [slot for key n, ..., slot for key 1, leaf script, control block]
    ("flipped signature bit", _tap_flip, True),
    ("one signature short", _tap_drop, True),
    ("signatures in the wrong slots", lambda s: list(reversed(s[:-2])) + s[-2:], True),
    ("flipped control block parity", lambda s: s[:-1] + [bytes([s[-1][0] ^ 1]) + s[-1][1:]], True),
    ("annex appended", lambda s: s + [b"\x50annex"], True),  # the signatures do not commit to it
    ("explicit sighash 0x00", lambda s: [x + b"\x00" if x else x for x in s[:-2]] + s[-2:], True),
    ("extra leaf item", lambda s: [b""] + s, True),
    ("other leaf script", lambda s: s[:-2] + [s[-2][:-2] + b"\x53\x9c", s[-1]], True),
]


def _cases():
    for script in SCRIPTS:
        for name, mutate, invalid in (TAP_MUTATIONS if script == "tr" else ECDSA_MUTATIONS):
            yield pytest.param(script, mutate, invalid, id=f"{script}-{name}")


@pytest.mark.parametrize("script,mutate,consensus_invalid", list(_cases()))
def test_mutated_final_in_one_copy_is_refused_by_combine_finalize_and_vault_extract(script, mutate,
                                                                                    consensus_invalid):
    vault, holders, psbt, parts, final = ceremony(script)
    bad = with_stack(final, script, mutate(stack_of(final, script)))
    assert bad.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTSIG) != final.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTSIG) or \
        bad.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTWITNESS) != final.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTWITNESS)
    with pytest.raises(CombineError, match=r"PSBT 2, input 0: its final scriptSig/witness") as exc:
        combine([parts[0], bad], vault)
    assert exc.value.code == "combine.refused"
    assert exc.value.input_index == 0
    assert exc.value.psbt_index == 2
    assert exc.value.field is not None
    # the Finalizer no longer keeps a final it did not verify (merge() is the unverified hazmat merge)
    with pytest.raises(FinalizeError, match=r"input 0: its final scriptSig/witness") as exc:
        finalize(merge([parts[0], bad]), vault)
    assert exc.value.code == "finalize.failed" and exc.value.input_index == 0 and exc.value.field is not None
    with pytest.raises(ExtractError, match=r"input 0: its final scriptSig/witness") as exc:
        extract(bad, vault=vault, verify=False)
    assert exc.value.code == "extract.failed" and exc.value.input_index == 0 and exc.value.field is not None
    if consensus_invalid:  # what extract(verify=False) used to hand out: Bitcoin Core rejects it
        with pytest.raises(ExtractError, match="libbitcoinkernel") as exc:
            extract(bad, max_weight=None, min_fee_rate=None)
        assert exc.value.code == "extract.failed" and exc.value.input_index == 0


@pytest.mark.parametrize("script", SCRIPTS)
def test_garbage_final_fields_are_refused(script):
    vault, holders, psbt, parts, final = ceremony(script)
    garbage = [set_final(psbt, witness=witness_bytes([b"garbage"])),
               set_final(psbt, script_sig=b"\x51"),  # OP_TRUE
               set_final(psbt, script_sig=b"\x4c"),  # truncated push
               set_final(psbt, witness=b"\x05\x01")]  # truncated witness
    for bad in garbage:
        with pytest.raises(CombineError, match="PSBT 2, input 0: its final scriptSig/witness") as exc:
            combine([parts[1], bad], vault)
        assert exc.value.code == "combine.refused"
        assert exc.value.input_index == 0
        assert exc.value.psbt_index == 2
        assert exc.value.field is not None


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_native_segwit_final_with_a_scriptsig_is_refused(script):
    vault, holders, psbt, parts, final = ceremony(script)
    bad = set_final(final, script_sig=b"\x51", witness=bytes(final.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTWITNESS)))
    with pytest.raises(CombineError, match="PSBT 1, input 0") as exc:
        combine([bad, parts[2]], vault)
    assert exc.value.code == "combine.refused"
    assert exc.value.input_index == 0
    assert exc.value.psbt_index == 1
    assert exc.value.field == "PSBT_IN_FINAL_SCRIPTWITNESS"
    with pytest.raises(ExtractError, match="libbitcoinkernel") as exc:
        extract(bad)
    assert exc.value.code == "extract.failed" and exc.value.input_index == 0


def test_sh_wsh_final_with_a_wrong_scriptsig_is_refused():
    vault, holders, psbt, parts, final = ceremony("sh-wsh")
    wit = bytes(final.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTWITNESS))
    other = vault.derive_branch(0, 5).redeem_script
    for ss in (None, push_data(other), bytes(final.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTSIG)) + b"\x00"):
        bad = set_final(final, script_sig=ss, witness=wit)
        with pytest.raises(CombineError, match="PSBT 1, input 0") as exc:
            combine([bad], vault)
        assert exc.value.code == "combine.refused"
        assert exc.value.input_index == 0
        assert exc.value.psbt_index == 1
        assert exc.value.field == "PSBT_IN_FINAL_SCRIPTWITNESS"


def test_sh_final_with_non_minimal_push_is_refused():
    vault, holders, psbt, parts, final = ceremony("sh")
    stack = stack_of(final, "sh")
    # the same items, the first signature pushed with OP_PUSHDATA1 (BIP62 non-minimal)
    ss = b"\x00" + b"\x4c" + bytes([len(stack[1])]) + stack[1] + b"".join(push_data(x) for x in stack[2:])
    bad = set_final(final, script_sig=ss)
    with pytest.raises(CombineError, match="not byte for byte") as exc:
        combine([bad], vault)
    assert exc.value.code == "combine.refused"
    assert exc.value.input_index == 0
    assert exc.value.psbt_index == 1
    assert exc.value.field == "PSBT_IN_FINAL_SCRIPTSIG"


@pytest.mark.parametrize("script", ["sh", "wsh"])
def test_final_with_another_vault_script_is_refused(script):
    vault, holders, psbt, parts, final = ceremony(script)
    stack = stack_of(final, script)
    d5 = vault.derive_branch(0, 5)
    stack[-1] = d5.redeem_script if script == "sh" else d5.witness_script
    with pytest.raises(CombineError, match="vault's script") as exc:
        combine([with_stack(final, script, stack)], vault)
    assert exc.value.code == "combine.refused"
    assert exc.value.input_index == 0
    assert exc.value.psbt_index == 1
    assert exc.value.field is not None


def test_tr_final_with_all_three_signatures_is_refused():
    # multi_a(2, ...) ends in <2> OP_NUMEQUAL: three valid signatures fail consensus
    vault, holders, psbt, parts, two = ceremony("tr")
    full = combine(parts, vault)
    d = vault.derive_branch(0, 0)
    items = [bytes(full.inputs[0].get(F.PSBT_IN_TAP_SCRIPT_SIG, pk[1:] + d.leaf_hash)) for pk in reversed(d.pubkeys)]
    bad = with_stack(two, "tr", items + [d.leaf_script, d.control_block])
    with pytest.raises(CombineError, match="3 signature") as exc:
        combine([bad], vault)
    assert exc.value.code == "combine.refused"
    assert exc.value.input_index == 0
    assert exc.value.psbt_index == 1
    assert exc.value.field == "PSBT_IN_FINAL_SCRIPTWITNESS"
    with pytest.raises(ExtractError, match="libbitcoinkernel") as exc:
        extract(bad)
    assert exc.value.code == "extract.failed" and exc.value.input_index == 0


@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh"])
def test_consensus_valid_sighash_none_final_is_refused(script):
    """Signatures with SIGHASH_NONE make a final Bitcoin Core accepts, but whose outputs anyone can
    change: not the vault's satisfaction."""
    vault, holders, psbt = make(script, inputs=1)
    p = psbt.copy()
    p.inputs[0].set(F.PSBT_IN_SIGHASH_TYPE, b"", (2).to_bytes(4, "little"))
    for h in holders[:2]:
        pos = [c.fingerprint for c in vault.cosigners].index(h.fingerprint)
        secret = h.root.derive(vault.key_path(pos, 0, 0)).key[1:]
        assert hazmat.sign_input(p, 0, secret)
    bad = hazmat.finalize(p)
    assert extract(bad).verified_by_kernel  # consensus-valid
    with pytest.raises(CombineError, match="SIGHASH_ALL") as exc:
        combine([bad], vault)
    assert exc.value.code == "combine.refused"
    assert exc.value.input_index == 0
    assert exc.value.psbt_index == 1
    assert exc.value.field is not None
    with pytest.raises(FinalizeError, match="SIGHASH_ALL") as exc:
        finalize(bad, vault)
    assert exc.value.code == "finalize.failed" and exc.value.input_index == 0 and exc.value.field is not None


# -- what passes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_our_own_final_passes_combine_and_finalize(script):
    vault, holders, psbt, parts, final = ceremony(script)
    # alone (no derivations left: found among the vault's scripts), and with a partial copy
    assert combine([final], vault).serialize() == final.serialize()
    mixed = combine([parts[2], final], vault)
    assert combine([final, parts[2]], vault).serialize() == mixed.serialize()
    refinal = finalize(mixed, vault)
    assert refinal.serialize() == final.serialize()
    assert finalize(final, vault).serialize() == final.serialize()  # idempotent
    tx = extract(refinal, vault=vault)
    assert tx.verified_by_kernel and tx.vault_verified


@pytest.mark.parametrize("script", SCRIPTS)
def test_two_different_valid_finals_combine_commutatively(script):
    vault, holders, psbt, a_parts, a = ceremony(script, signers=(0, 1))
    b = finalize(combine([a_parts[1], a_parts[2]], vault), vault)
    assert a.serialize() != b.serialize()
    ab = combine([a, b], vault)
    assert ab.serialize() == combine([b, a], vault).serialize()
    for i in range(ab.input_count):  # per input, one of the two valid finals, nothing else
        got = read_final(ab, i)
        assert got in (read_final(a, i), read_final(b, i))
    c = a_parts[0]
    left, right = combine([combine([a, b], vault), c], vault), combine([a, combine([b, c], vault)], vault)
    assert left.serialize() == right.serialize()
    assert extract(finalize(ab, vault)).verified_by_kernel


def test_final_of_a_coin_the_vault_cannot_find_is_refused():
    vault, holders, _ = make("wsh")
    far = vault.create_psbt([synthetic_utxo(vault, 100_000, index=1_500)], [(EXTERNAL, 50_000)], fee_rate=3.0,
                            change_index=0)
    signed = far.copy()
    for h in holders[:2]:
        pos = [c.fingerprint for c in vault.cosigners].index(h.fingerprint)
        assert hazmat.sign_input(signed, 0, h.root.derive(vault.key_path(pos, 0, 1_500)).key[1:])
    final = hazmat.finalize(signed)
    assert extract(final).verified_by_kernel
    assert combine([far, final], vault)  # with derivations from the other copy: verified
    with pytest.raises(CombineError, match="lists no key derivations") as exc:
        combine([final], vault)
    assert exc.value.code == "combine.refused" and exc.value.input_index == 0 and exc.value.limit == 1000


# -- fields no vault can use ---------------------------------------------------------------------

@pytest.mark.parametrize("script", ["tr", "wsh"])
def test_taproot_key_path_signature_is_refused(script):
    vault, holders, psbt, parts, final = ceremony(script)
    bad = parts[0].copy()
    bad.inputs[1].set(F.PSBT_IN_TAP_KEY_SIG, b"", bytes(range(64)))
    with pytest.raises(CombineError, match="PSBT 2, input 1: carries a taproot key-path signature.*NUMS") as exc:
        combine([parts[1], bad], vault)
    assert exc.value.code == "combine.refused"
    assert exc.value.input_index == 1
    assert exc.value.psbt_index == 2
    assert exc.value.field == "PSBT_IN_TAP_KEY_SIG"


@pytest.mark.parametrize("keytype,keydata", [
    (F.PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS, b"\x02" + bytes(32)),
    (F.PSBT_IN_MUSIG2_PUB_NONCE, b"\x02" + bytes(32) + b"\x03" + bytes(32)),
    (F.PSBT_IN_MUSIG2_PARTIAL_SIG, b"\x02" + bytes(32) + b"\x03" + bytes(32)),
])
def test_musig2_fields_are_refused(keytype, keydata):
    vault, holders, psbt, parts, final = ceremony("tr")
    bad = parts[0].copy()
    bad.inputs[0].set(keytype, keydata, bytes(66))
    with pytest.raises(CombineError, match="PSBT 1, input 0: carries .*MuSig2.*vaults have no MuSig2 keys") as exc:
        combine([bad, parts[1]], vault)
    assert exc.value.code == "combine.refused"
    assert exc.value.input_index == 0
    assert exc.value.psbt_index == 1
    assert exc.value.field is not None


def test_lock_times_spread_over_copies_cannot_change_the_merged_transaction():
    """BIP370: each copy alone has a time lock; merged, every input allows a height lock, so the
    locktime would change to the height after the copies were signed."""
    vault, holders, psbt = make("wsh")
    v2 = psbt.to_v2()
    t, h = (600_000_000).to_bytes(4, "little"), (200).to_bytes(4, "little")
    a, b = v2.copy(), v2.copy()
    a.inputs[0].set(F.PSBT_IN_REQUIRED_TIME_LOCKTIME, b"", t)
    a.inputs[0].set(F.PSBT_IN_REQUIRED_HEIGHT_LOCKTIME, b"", h)
    a.inputs[1].set(F.PSBT_IN_REQUIRED_TIME_LOCKTIME, b"", t)
    b.inputs[0].set(F.PSBT_IN_REQUIRED_TIME_LOCKTIME, b"", t)
    b.inputs[1].set(F.PSBT_IN_REQUIRED_TIME_LOCKTIME, b"", t)
    b.inputs[1].set(F.PSBT_IN_REQUIRED_HEIGHT_LOCKTIME, b"", h)
    assert a.locktime == b.locktime == 600_000_000
    with pytest.raises(
        CombineError, match="merged PSBT is for a different transaction than its copies: locktime"
    ) as exc:
        combine([a, b], vault)
    assert exc.value.code == "combine.refused"
