"""The fast paths of issue 20 keep every check.

- msigvault.secp (libsecp256k1 called directly) gives the same signatures, verdicts and child
  keys as embit's wrappers, including refusals of high-S and non-strict DER signatures.
- Within one call scope (one role call, or combine_finalize_extract) a signature is verified once
  by libsecp256k1 per exact (key, signature, sighash); each role still asks for every signature it
  uses, so a bad signature is refused by the Combiner, the Finalizer and the Extractor even after
  good ones were verified in the same scope.
- Previous transactions are parsed once per scope by their exact bytes: a tampered copy of a
  transaction already seen is still parsed and refused.
- The signer checks its branch key once against the vault's record instead of each child key.
"""

import hashlib

import pytest
from embit.util import secp256k1 as E
from hypothesis import given, settings
from hypothesis import strategies as st

from msigvault import Vault, secp
from msigvault.errors import CombineError, ExtractError, FinalizeError, SignerRefusal, UtxoMismatch
from msigvault.network import Network
from msigvault.psbt import fields as F
from msigvault.psbt.combiner import combine, merge
from msigvault.psbt.common import call_scope, ecdsa_verify, legacy_txid, schnorr_verify, unsigned_tx
from msigvault.psbt.extractor import combine_finalize_extract, extract
from msigvault.psbt.finalizer import finalize
from msigvault.psbt.sighash import SighashCache
from msigvault.psbt.signer import _LeafSigner, find_cosigner, sign
from msigvault.testing.keyholders import TestKeyholder
from msigvault.types import Utxo

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
CURVE_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def embit_low_r(secret, msg):
    """The grinding loop as it was written on embit's wrappers (the reference)."""
    sig = E.ecdsa_sign(msg, secret)
    der = E.ecdsa_signature_serialize_der(sig)
    counter = 1
    while len(der) > 70 and counter < 256:
        sig = E.ecdsa_sign(msg, secret, None, counter.to_bytes(32, "little"))
        der = E.ecdsa_signature_serialize_der(sig)
        counter += 1
    return der


def der_of(r, s):
    def part(x):
        b = x.to_bytes(33, "big").lstrip(b"\x00")
        return b"\x00" + b if b[0] & 0x80 else b
    body = b"\x02" + bytes([len(part(r))]) + part(r) + b"\x02" + bytes([len(part(s))]) + part(s)
    return b"\x30" + bytes([len(body)]) + body


def split_der(der):
    rl = der[3]
    r = int.from_bytes(der[4:4 + rl], "big")
    s = int.from_bytes(der[6 + rl:], "big")
    return r, s


@pytest.mark.parametrize("k", range(40))
def test_fast_secp_matches_embit(k):
    secret = hashlib.sha256(b"scope-key-%d" % k).digest()
    msg = hashlib.sha256(b"scope-msg-%d" % k).digest()
    der = secp.ecdsa_sign_low_r(secret, msg)
    assert der == embit_low_r(secret, msg) and len(der) <= 70
    pub = secp.pubkey_create(secret)
    assert pub == E.ec_pubkey_serialize(E.ec_pubkey_create(secret))
    assert secp.ecdsa_verify(pub, der, msg)
    assert not secp.ecdsa_verify(pub, der, hashlib.sha256(msg).digest())
    r, s = split_der(der)
    assert der_of(r, s) == der
    assert not secp.ecdsa_verify(pub, der_of(r, CURVE_N - s), msg)  # the same signature with high S
    padded = b"\x30" + bytes([der[1] + 1]) + b"\x02" + bytes([der[3] + 1]) + b"\x00" + der[4:]
    assert not secp.ecdsa_verify(pub, padded, msg)  # not strict DER (BIP66)
    tweak = hashlib.sha256(b"scope-tweak-%d" % k).digest()
    point = E.ec_pubkey_parse(pub)
    assert secp.child_point(point, tweak) == E.ec_pubkey_add(point, tweak)
    with pytest.raises(ValueError):
        secp.child_point(point, CURVE_N.to_bytes(32, "big"))


@pytest.mark.parametrize("k", range(40))
def test_fast_bip340_matches_embit(k):
    secret = hashlib.sha256(b"scope-key-%d" % k).digest()
    msg = hashlib.sha256(b"scope-msg-%d" % k).digest()
    aux = hashlib.sha256(b"scope-aux-%d" % k).digest()
    sig = secp.schnorr_sign(secret, msg, aux)
    assert sig == E.schnorrsig_sign(msg, E.keypair_create(secret), None, aux)
    xonly = secp.pubkey_create(secret)[1:]
    assert secp.schnorr_verify(xonly, sig, msg)
    assert not secp.schnorr_verify(xonly, sig, hashlib.sha256(msg).digest())
    flipped = bytearray(sig)
    flipped[k % 64] ^= 1 << (k % 8)
    assert not secp.schnorr_verify(xonly, bytes(flipped), msg)
    assert not secp.schnorr_verify(xonly, sig + b"\x01", msg) and not secp.schnorr_verify(xonly, sig[:63], msg)
    assert not secp.schnorr_verify(b"\xff" * 32, sig, msg)  # not an x coordinate of the curve
    with pytest.raises(ValueError):
        secp.schnorr_sign(bytes(32), msg, aux)  # zero is not a secret key


def test_memo_is_keyed_by_the_exact_triple():
    secret = hashlib.sha256(b"memo").digest()
    pub = secp.pubkey_create(secret)
    msg, other = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    der = secp.ecdsa_sign_low_r(secret, msg)
    with call_scope() as scope:
        assert ecdsa_verify(pub, der, msg)
        assert ecdsa_verify(pub, der, msg)  # from the memo
        assert not ecdsa_verify(pub, der, other)
        assert not schnorr_verify(pub[1:], der[:64].ljust(64, b"\x00"), msg)
        assert scope.verified == {(pub, der, msg)}
    with call_scope() as fresh:  # a new call starts empty
        assert fresh.verified == set()


def make(script, inputs=3):
    holders = [TestKeyholder.from_label(f"scope-{i}") for i in range(3)]
    vault = Vault.multisig(2, [h.cosigner(script) for h in holders], script=script, network=NET)
    scripts = [vault.derive_branch(0, j).script_pubkey for j in range(inputs)]
    prev = F.serialize_tx(2, [(hashlib.sha256(script.encode()).digest(), 0, 0xFFFFFFFF)],
                          [(100_000, s) for s in scripts], 0)  # one funding transaction for all inputs
    txid = legacy_txid(F.parse_tx(prev, "prev"))[::-1].hex()
    utxos = [Utxo(txid, j, 100_000, scripts[j], 0, j, prev) for j in range(inputs)]
    psbt = vault.create_psbt(utxos, [(EXTERNAL, 100_000 * inputs - 20_000)], fee_rate=3.0, change_index=0)
    return vault, holders, psbt


def bad_copy(vault, good, other):
    """``good`` with input 0's signature replaced by the same cosigner's signature of input 1."""
    bad = good.copy()
    t = F.PSBT_IN_TAP_SCRIPT_SIG if vault.script == "tr" else F.PSBT_IN_PARTIAL_SIG
    (key0, _), = bad.inputs[0].items_of_type(t)
    (_, replacement), = other.inputs[1].items_of_type(t)  # well-formed, but for another input
    bad.inputs[0].set(t, key0, replacement)
    return bad


@pytest.mark.parametrize("script", ["sh", "wsh", "tr"])
def test_pipeline_matches_the_roles_and_refuses_a_bad_signature_at_each_role(script):
    vault, holders, psbt = make(script)
    a, _ = sign(psbt, vault, holders[0].root)
    b, _ = sign(psbt, vault, holders[1].root)
    final, tx = combine_finalize_extract([a, b], vault)
    assert final == finalize(combine([a, b], vault), vault)
    assert tx.raw == extract(final).raw and tx.verified_by_kernel
    bad = bad_copy(vault, b, b)
    with pytest.raises(CombineError):  # the Combiner
        combine_finalize_extract([a, bad], vault)
    merged_bad = merge([a, bad])  # hazmat merge: nothing verified
    with call_scope():
        combine([a, b], vault)  # every good signature is now in this scope's memo
        with pytest.raises(FinalizeError):  # the Finalizer still verifies what it is given
            finalize(merged_bad, vault)
        good_final = finalize(combine([a, b], vault), vault)
        forged = good_final.copy()
        forged.inputs[0] = good_final.inputs[0].copy()
        other = finalize(combine([a, b], vault), vault).inputs[1]
        t = F.PSBT_IN_FINAL_SCRIPTSIG if script == "sh" else F.PSBT_IN_FINAL_SCRIPTWITNESS
        forged.inputs[0].set(t, b"", other.get(t))  # input 1's final fields on input 0
        with pytest.raises(ExtractError):  # the Extractor, with vault=, verifies the finals it is given
            extract(forged, vault=vault)


@pytest.mark.parametrize("parsed", [False, True])
def test_a_tampered_copy_of_a_cached_previous_transaction_is_still_refused(parsed):
    """Inside one scope, and after Psbt.parse read the untampered bytes (its cache is by value)."""
    from msigvault.psbt.psbt import Psbt

    vault, holders, psbt = make("wsh")
    if parsed:
        psbt = Psbt.parse(psbt.serialize())
        assert psbt.parsed_prev_tx(bytes(psbt.inputs[0].get(F.PSBT_IN_NON_WITNESS_UTXO))) is not None
    raw = bytes(psbt.inputs[0].get(F.PSBT_IN_NON_WITNESS_UTXO))
    assert all(bytes(m.get(F.PSBT_IN_NON_WITNESS_UTXO)) == raw for m in psbt.inputs)  # one shared transaction
    tampered = bytearray(raw)
    tampered[-5] ^= 1  # last output's script, of a transaction input 0 already brought into the cache
    psbt.inputs[1].set(F.PSBT_IN_NON_WITNESS_UTXO, b"", bytes(tampered))
    with pytest.raises(UtxoMismatch) as e:
        sign(psbt, vault, holders[0].root)
    assert e.value.input_index == 1


def test_the_signer_checks_its_branch_key_against_the_vault_record():
    vault, holders, psbt = make("wsh")
    me, account = find_cosigner(vault, holders[0].root)
    _LeafSigner(account.child(0), me, 0, 0)  # the right record
    other, _ = find_cosigner(vault, holders[1].root)
    with pytest.raises(SignerRefusal, match="branch 0 key differs"):
        _LeafSigner(account.child(0), other, 0, 0)
    with pytest.raises(SignerRefusal, match="branch 1 key differs"):
        _LeafSigner(account.child(0), me, 1, 3)


def test_already_signed_uses_the_same_checks():
    vault, holders, psbt = make("wsh")
    from msigvault.psbt.signer import prepare
    a, _ = sign(psbt, vault, holders[0].root)
    fp = holders[0].root.fingerprint
    assert prepare(a, vault, fingerprint=fp).already_signed
    assert not prepare(psbt, vault, fingerprint=fp).already_signed
    bad = bad_copy(vault, a, a)
    assert not prepare(bad, vault, fingerprint=fp).already_signed
    tx = unsigned_tx(a)
    assert SighashCache(tx, None) is not None


@pytest.mark.parametrize("n", [1, 2, 7])
def test_legacy_sighash_all_fast_path_matches_embit(n):
    """The SIGHASH_ALL legacy path (built once per transaction) against embit's own legacy sighash."""
    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    from msigvault.psbt.sighash import TxIn, TxOut as Out, UnsignedTx

    ins = [TxIn(hashlib.sha256(b"in%d" % j).digest(), j, 0xFFFFFFFD - j) for j in range(n)]
    outs = (Out(5_000, bytes.fromhex("0014") + bytes(20)), Out(7_000, bytes.fromhex("a914") + bytes(20) + b"\x87"))
    tx = UnsignedTx(2, 123, tuple(ins), outs)
    etx = Transaction(version=2, locktime=123,
                      vin=[TransactionInput(i.txid[::-1], i.vout, sequence=i.sequence) for i in ins],
                      vout=[TransactionOutput(o.amount, Script(o.script_pubkey)) for o in outs])
    cache = SighashCache(tx)
    for j in range(n):
        code = bytes([0x52, 0x21]) + bytes([2]) + bytes(32) + bytes([0x51 + j % 3, 0xAE])
        assert cache.legacy(j, code, 0x01) == etx.sighash_legacy(j, Script(code), 0x01)
        assert cache.legacy(j, code, 0x81) == etx.sighash_legacy(j, Script(code), 0x81)  # the general path


@pytest.mark.parametrize("script", ["sh", "wsh", "tr"])
def test_a_pipeline_reuses_an_inputs_resolution_only_for_the_same_input_data(script, monkeypatch):
    """combine_finalize_extract resolves each input once (the Finalizer reuses the Combiner's
    proof that the input is a vault coin), but only for byte-identical input data: an input whose
    script, derivation or coin differs is resolved again and refused; single role calls keep
    nothing."""
    from msigvault.psbt import common

    vault, holders, psbt = make(script)
    a, _ = sign(psbt, vault, holders[0].root)
    b, _ = sign(psbt, vault, holders[1].root)
    calls = []
    original = common._resolve_input

    def counting(p, i, *args, **kwargs):
        calls.append(i)
        return original(p, i, *args, **kwargs)

    monkeypatch.setattr(common, "_resolve_input", counting)
    combine_finalize_extract([a, b], vault)
    assert sorted(calls) == list(range(psbt.input_count))  # once per input in all three roles
    calls.clear()
    finalize(combine([a, b], vault), vault)  # two role calls: each resolves every input itself
    assert sorted(calls) == sorted(2 * list(range(psbt.input_count)))
    combined = combine([a, b], vault)
    altered = combined.copy()  # input 0 now claims input 1's derivations: not its coin
    m0, m1 = altered.inputs[0], altered.inputs[1]
    for t in (F.PSBT_IN_BIP32_DERIVATION, F.PSBT_IN_TAP_BIP32_DERIVATION, F.PSBT_IN_WITNESS_SCRIPT,
              F.PSBT_IN_REDEEM_SCRIPT, F.PSBT_IN_TAP_LEAF_SCRIPT, F.PSBT_IN_TAP_MERKLE_ROOT):
        m0.delete_type(t)
        for keydata, value in m1.items_of_type(t):
            m0.set(t, keydata, value)
    with call_scope(pipeline=True):
        combine([a, b], vault)  # input 0's true data is resolved and kept in this scope
        with pytest.raises(FinalizeError) as e:
            finalize(altered, vault)
    assert "not a vault coin" in str(e.value) and e.value.input_index == 0


def _reference_derivations(m):
    """claimed_derivations as written before its one-pass fast path (the general parsers)."""
    from msigvault.psbt.common import Derivation

    out = [Derivation(bytes(pk), *(lambda fp, path: (fp, tuple(path)))(*F.parse_key_origin(v, "BIP32 derivation")))
           for pk, v in m.items_of_type(F.PSBT_IN_BIP32_DERIVATION)]
    for xonly, v in m.items_of_type(F.PSBT_IN_TAP_BIP32_DERIVATION):
        hashes, fp, path = F.parse_tap_bip32(v, "taproot BIP32 derivation")
        out.append(Derivation(bytes(xonly), fp, tuple(path), tuple(bytes(h) for h in hashes)))
    return out



@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([F.PSBT_IN_BIP32_DERIVATION, F.PSBT_IN_TAP_BIP32_DERIVATION, 0x05]),
                          st.binary(min_size=0, max_size=40),
                          st.one_of(st.binary(max_size=120),
                                    st.builds(lambda h, fp, k: bytes([h]) + bytes(32 * h) + fp + bytes(4 * k),
                                              st.integers(0, 3), st.binary(min_size=4, max_size=4),
                                              st.integers(0, 20)))),
                max_size=5))
def test_one_pass_derivations_match_the_general_parsers(records):
    """The fast path of claimed_derivations reads exactly what the general parsers read, and
    leaves anything else (long paths, odd lengths, many leaf hashes) to them and their errors."""
    from msigvault.errors import InvalidPSBT
    from msigvault.psbt.common import claimed_derivations
    from msigvault.psbt.psbt import PsbtMap

    m = PsbtMap()
    for t, keydata, value in records:
        m.set(t, keydata, value)
    try:
        want = _reference_derivations(m)
    except InvalidPSBT as e:
        with pytest.raises(InvalidPSBT) as got:
            claimed_derivations(m, is_input=True)
        assert str(got.value) == str(e)
        return
    assert claimed_derivations(m, is_input=True) == want
