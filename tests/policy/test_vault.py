import pytest
from hypothesis import given, strategies as st

from msigvault import Cosigner, Vault
from msigvault.errors import ChecksumError, InvalidDescriptor, InvalidKey, NetworkMismatch, PolicyError
from msigvault.network import Network
from msigvault.policy import NUMS_H, add_checksum
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.strategies import vault_keyholders, vaults

NET = Network.REGTEST


def holders(k, script="wsh", network=NET):
    return [TestKeyholder.from_label(f"h{i}", network).cosigner(script) for i in range(k)]


@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh", "tr"])
def test_descriptor_round_trip_and_forms(script):
    v = Vault.multisig(2, holders(3, script), script=script, network=NET)
    d = v.descriptor()
    assert "/<0;1>/*" in d and d.count("#") == 1
    assert Vault.from_descriptor(d, network=NET) == v
    receive, change = v.descriptors()
    assert "/0/*" in receive and "/1/*" in change
    # single-path forms parse to the same vault (branches are fixed to 0 receive / 1 change)
    assert Vault.from_descriptor(receive, network=NET) == v
    assert Vault.from_descriptor(change, network=NET) == v


def test_script_prefixes():
    cs = holders(3)
    assert Vault.multisig(2, cs, script="wsh", network=NET).address(0).startswith("bcrt1q")
    assert Vault.multisig(2, cs, script="tr", network=NET).address(0).startswith("bcrt1p")
    assert Vault.multisig(2, cs, script="sh", network=NET).address(0).startswith("2")
    assert Vault.multisig(2, cs, script="sh-wsh", network=NET).address(0).startswith("2")
    tr = Vault.multisig(2, cs, script="tr", network=NET)
    assert tr.descriptor().startswith(f"tr({NUMS_H.hex()},sortedmulti_a(2,")
    assert Vault.multisig(2, cs, script="wsh", sorted=False, network=NET).descriptor().startswith("wsh(multi(2,")


def test_receive_and_change_differ_and_are_deterministic():
    v = Vault.multisig(2, holders(3), network=NET)
    assert v.address(0) != v.change_address(0)
    assert v.address(0) != v.address(1)
    assert v.address(7) == Vault.multisig(2, holders(3), network=NET).address(7)
    d = v.derive(3, change=True)
    assert d.branch == 1 and d.index == 3 and d.witness_script and d.redeem_script is None
    assert sorted(d.pubkeys) == list(d.pubkeys)
    # signers maps script position -> cosigner
    for pos, ci in enumerate(d.signers):
        assert v.cosigners[ci].pubkey_at(1, 3) == d.pubkeys[pos]


@pytest.mark.parametrize("script,limit", [("sh", 15), ("sh-wsh", 20), ("wsh", 20)])
def test_key_count_limits(script, limit):
    cs = holders(limit + 1, script)
    Vault.multisig(limit, cs[:limit], script=script, network=NET)
    with pytest.raises(PolicyError, match=f"at most {limit}"):
        Vault.multisig(2, cs, script=script, network=NET)


def test_tr_allows_more_than_20_keys():
    v = Vault.multisig(11, holders(21, "tr"), script="tr", network=NET)
    assert v.address(0).startswith("bcrt1p")


@pytest.mark.parametrize("m", [0, 4, -1, True, 2.0, "2"])
def test_threshold_limits(m):
    with pytest.raises(PolicyError, match="threshold"):
        Vault.multisig(m, holders(3), network=NET)


def test_duplicate_cosigner_by_public_key_even_if_serialised_differently():
    cs = holders(2)
    # the same key given again as a SLIP-132 Vpub string is still the same cosigner
    dup = cs[0].origin() + cs[0].key.to_base58(NET.slip132_pub["Vpub"])
    with pytest.raises(PolicyError, match="same public key"):
        Vault.multisig(2, [cs[0], cs[1], dup], network=NET)


def test_duplicate_fingerprint_and_path():
    a, b = holders(2)
    forged = Cosigner(a.fingerprint, a.path, b.xpub, b.key)
    with pytest.raises(PolicyError, match="share fingerprint and path"):
        Vault.multisig(1, [a, forged], network=NET)


def test_mixed_networks():
    main = TestKeyholder.from_label("m", Network.MAINNET).cosigner("wsh")
    with pytest.raises(NetworkMismatch):
        Vault.multisig(1, [main] + holders(1), network=NET)
    with pytest.raises(NetworkMismatch):
        Vault.multisig(1, holders(2), network=Network.MAINNET)


def test_coin_type_must_match_network():
    # a BIP48 path with mainnet coin type 0 but a tpub: exported for the wrong network
    h = TestKeyholder.from_label("x")
    c = Cosigner.from_root(h.root, "m/48h/0h/0h/2h", NET)
    with pytest.raises(NetworkMismatch, match="coin type 0"):
        Vault.multisig(1, [c], network=NET)


def test_tpub_vault_needs_explicit_network():
    d = Vault.multisig(2, holders(3), network=NET).descriptor()
    with pytest.raises(NetworkMismatch, match="pass network"):
        Vault.from_descriptor(d)


def test_checksum_required_unless_waived():
    v = Vault.multisig(2, holders(3), network=NET)
    bare = v.descriptor(checksum=False)
    with pytest.raises(ChecksumError, match="no checksum"):
        Vault.from_descriptor(bare, network=NET)
    assert Vault.from_descriptor(bare, network=NET, require_checksum=False) == v
    tampered = v.descriptor().replace("sortedmulti(2", "sortedmulti(1")
    with pytest.raises(ChecksumError, match="mismatch"):
        Vault.from_descriptor(tampered, network=NET)


@pytest.mark.parametrize("mutate,error", [
    (lambda d: d.replace("/<0;1>/*", "/<0;1>/*h", 1), InvalidDescriptor),
    (lambda d: d.replace("/<0;1>/*", "/<1;0>/*", 1), InvalidDescriptor),
    (lambda d: d.replace("/<0;1>/*", "/0/*", 1), InvalidDescriptor),  # mixed suffixes
    (lambda d: d.replace("/<0;1>/*", "", 1), InvalidDescriptor),
    (lambda d: d.replace("wsh(", "wpkh(", 1), InvalidDescriptor),
    (lambda d: d.replace("sortedmulti(", "thresh(", 1), InvalidDescriptor),
    (lambda d: d.replace("[", "", 1), InvalidKey),  # origin damaged
    (lambda d: d.replace("]", "/]", 1), InvalidKey),  # empty path step
])
def test_malformed_descriptors(mutate, error):
    d = Vault.multisig(2, holders(3), network=NET).descriptor(checksum=False)
    with pytest.raises(error):
        Vault.from_descriptor(add_checksum(mutate(d)), network=NET)


def test_tr_with_spendable_internal_key_is_refused():
    v = Vault.multisig(2, holders(3, "tr"), script="tr", network=NET)
    other = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    d = v.descriptor(checksum=False).replace(NUMS_H.hex(), other)
    with pytest.raises(InvalidDescriptor, match="spendable internal key"):
        Vault.from_descriptor(add_checksum(d), network=NET)


def test_policy_id_ignores_order_only_when_sorted():
    cs = holders(3)
    a = Vault.multisig(2, cs, network=NET)
    b = Vault.multisig(2, list(reversed(cs)), network=NET)
    assert a != b and a.same_policy(b) and len(a.policy_id) == 64
    ua = Vault.multisig(2, cs, sorted=False, network=NET)
    ub = Vault.multisig(2, list(reversed(cs)), sorted=False, network=NET)
    assert not ua.same_policy(ub)
    assert not a.same_policy(Vault.multisig(3, cs, network=NET))


@given(vaults(max_n=4))
def test_hypothesis_descriptor_round_trip(vault):
    for text in (vault.descriptor(), *vault.descriptors()):
        assert Vault.from_descriptor(text, network=vault.network) == vault


@given(vault_keyholders(max_n=5, sorted_choices=(True,)), st.randoms(use_true_random=False),
       st.integers(0, 1000), st.booleans())
def test_hypothesis_sorted_addresses_independent_of_cosigner_order(vh, rnd, index, change):
    vault, _ = vh
    shuffled = list(vault.cosigners)
    rnd.shuffle(shuffled)
    other = Vault.multisig(vault.m, shuffled, script=vault.script, network=vault.network)
    assert other.address(index, change=change) == vault.address(index, change=change)
    assert other.same_policy(vault)
