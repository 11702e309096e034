"""Property test: any recovery policy msigvault accepts (wsh, tr; relative and absolute locks;
tr paths that reuse primary keys), any path, any signer subset that completes it -> a witness
libbitcoinkernel accepts, on the primary path whenever its signatures are there; a subset that
completes no path -> NotEnoughSignatures."""

from hypothesis import HealthCheck, given, settings, strategies as st

from msigvault import Vault
from msigvault.errors import NotEnoughSignatures
from msigvault.network import Network
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.psbt import fields as F
from msigvault.psbt.common import unsigned_tx
from msigvault.psbt.paths import open_paths, spend_paths
from msigvault.psbt.signer import SignerPolicy
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
PAYEE = bytes.fromhex("0014") + bytes(range(20))
RELAXED = SignerPolicy(max_fee_fraction=1e9)
HOLDERS = [TestKeyholder.from_label(f"prop{i}", NET) for i in range(12)]


@st.composite
def recovery_vaults(draw):
    script = draw(st.sampled_from(["wsh", "tr"]))
    n = draw(st.integers(1, 4))
    m = draw(st.integers(1, n))
    primary = list(range(n))
    fresh = iter(range(n, len(HOLDERS)))
    wanted = []
    for _ in range(draw(st.integers(1, 2))):
        if script == "tr" and draw(st.booleans()):  # a decaying path over primary keys (and maybe others)
            keys = draw(st.lists(st.sampled_from(primary), min_size=1, max_size=n, unique=True))
            if draw(st.booleans()):
                keys.append(next(fresh))
        else:
            keys = [next(fresh) for _ in range(draw(st.integers(1, 3)))]
        inside = set(keys) <= set(primary)
        if inside and m == 1:
            continue  # a path of primary keys needing m signatures adds nothing (refused)
        k = draw(st.integers(1, min(len(keys), m - 1) if inside else len(keys)))
        lock = draw(st.one_of(st.integers(1, 30).map(Timelock.older),
                              st.integers(1, 400).map(Timelock.after),
                              st.integers(1, 20).map(lambda u: Timelock.older_seconds(512 * u))))
        wanted.append((k, keys, lock))
    seen, unique = set(), []
    for k, keys, lock in wanted:
        if (k, frozenset(keys), lock) not in seen:
            seen.add((k, frozenset(keys), lock))
            unique.append(Recovery(k, [HOLDERS[i].cosigner(script) for i in keys], lock))
    if not unique:
        unique.append(Recovery(1, [HOLDERS[next(fresh)].cosigner(script)], Timelock.older(5)))
    return Vault.multisig(m, [HOLDERS[i].cosigner(script) for i in primary], script=script, network=NET,
                          recovery=unique)


def holder_of(vault, pos):
    fp = vault.cosigners[pos].fingerprint
    return next(h for h in HOLDERS if h.fingerprint == fp)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vault=recovery_vaults(), data=st.data())
def test_any_path_any_completing_subset_is_accepted_by_core(vault, data):
    paths = spend_paths(vault)
    path = data.draw(st.sampled_from(paths))
    index = data.draw(st.integers(0, 50))
    utxo = synthetic_utxo(vault, 80_000, index=index, seed="recovery-props")
    psbt = vault.create_psbt([utxo], [(PAYEE, 30_000)], fee_rate=2.0, change_index=index,
                             path=path.name, fee_limits=RELAXED)
    signers = data.draw(st.lists(st.sampled_from(path.keys), min_size=path.threshold,
                                 max_size=len(path.keys), unique=True))
    if data.draw(st.booleans()):  # others may sign too
        signers += [p for p in data.draw(st.lists(st.sampled_from(range(len(vault.cosigners))), max_size=3))
                    if p not in signers and any(p in q.keys for q in paths if q.lock is None or q == path)]
    parts = [vault.sign(psbt, holder_of(vault, pos).root, policy=RELAXED)[0] for pos in signers]
    final = vault.finalize(vault.combine(parts))
    tx = vault.extract(final)
    assert tx.verified_by_kernel
    assert vault.analyze(psbt)["estimated_vsize"] >= tx.vsize
    raw = bytes(final.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTWITNESS))
    items, _ = F.read_witness_stack(raw, 0, len(raw), "w")
    primary_signed = sum(1 for pos in signers if pos < vault.n) >= vault.m
    if vault.script == "tr":
        leaf = next(x for x in vault.derive(index).leaves if x.control_block == bytes(items[-1]))
        assert (leaf.path == 0) == primary_signed  # the primary leaf exactly when its signatures are there
    elif primary_signed:
        assert len(items) == vault.m + 2  # the OP_0 dummy, m signatures, the witness script


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vault=recovery_vaults(), data=st.data())
def test_a_subset_completing_no_path_is_refused(vault, data):
    paths = spend_paths(vault)
    path = data.draw(st.sampled_from(paths))
    utxo = synthetic_utxo(vault, 80_000, index=3, seed="recovery-props-short")
    psbt = vault.create_psbt([utxo], [(PAYEE, 30_000)], fee_rate=2.0, change_index=3, path=path.name,
                             fee_limits=RELAXED)
    # one signature short on the chosen path, and not enough for any other open path
    signers = data.draw(st.lists(st.sampled_from(path.keys), min_size=path.threshold - 1,
                                 max_size=path.threshold - 1, unique=True))
    opened = open_paths(vault, unsigned_tx(psbt))
    if any(sum(1 for s in signers if s in p.keys) >= p.threshold for p in opened):
        return
    parts = [vault.sign(psbt, holder_of(vault, pos).root, policy=RELAXED)[0] for pos in signers] or [psbt]
    combined = vault.combine(parts)
    try:
        vault.finalize(combined)
    except NotEnoughSignatures as e:
        assert "no spending path is complete" in str(e)
    else:
        raise AssertionError("a PSBT completing no path was finalized")
