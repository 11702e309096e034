"""Vaults with timelocked recovery paths: construction, validation, descriptors, identity.

Plain m-of-n vaults are pinned against values computed on main before recovery paths existed
(tests/policy/data/plain_vault_pins.json)."""

import json
from pathlib import Path

import pytest

from msigvault import Vault
from msigvault.errors import InvalidDescriptor, PolicyError
from msigvault.network import Network
from msigvault.policy.descriptors import parse_descriptor
from msigvault.policy.recovery import LockKind, Recovery, RecoveryPath, Timelock
from msigvault.testing.keyholders import TestKeyholder

NET = Network.REGTEST
PINS = json.loads((Path(__file__).parent / "data" / "plain_vault_pins.json").read_text())


def key(label, script="wsh", network=NET):
    return TestKeyholder.from_label(label, network).cosigner(script)


def keys(prefix, k, script="wsh"):
    return [key(f"{prefix}{i}", script) for i in range(k)]


def year_vault(script="wsh", lock=Timelock.older(52_560)):
    return Vault.multisig(2, keys("p", 3, script), script=script, network=NET,
                          recovery=[Recovery(1, keys("r", 2, script), lock)])


@pytest.mark.parametrize("pin", PINS["vaults"], ids=lambda p: f"{p['script']}-{p['m']}of{len(p['labels'])}-"
                                                             f"{'sorted' if p['sorted'] else 'multi'}-{p['network']}")
def test_plain_vaults_are_unchanged(pin):
    net = Network.from_name(pin["network"])
    cs = [TestKeyholder.from_label(label, net).cosigner(pin["script"]) for label in pin["labels"]]
    v = Vault.multisig(pin["m"], cs, script=pin["script"], sorted=pin["sorted"], network=net)
    assert v.descriptor() == pin["descriptor"]
    assert v.policy_id == pin["policy_id"]
    assert v.addresses(0, 3) == pin["receive"]
    assert v.addresses(0, 2, change=True) == pin["change"]
    assert v.address(999) == pin["receive_999"]
    assert v.recovery == () and v.n == len(cs)
    assert Vault.from_descriptor(pin["descriptor"], network=net) == v


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_recovery_vault_descriptor_addresses_and_round_trip(script):
    v = year_vault(script)
    assert (v.m, v.n, len(v.cosigners)) == (2, 3, 5)
    assert v.recovery == (RecoveryPath(1, (3, 4), Timelock(LockKind.OLDER, 52_560)),)
    d = v.descriptor()
    if script == "wsh":
        assert d.startswith("wsh(or_d(multi(2,") and ",and_v(v:multi(1," in d and "older(52560)" in d
    else:
        assert d.startswith("tr(50929b74") and ",{sortedmulti_a(2," in d and "and_v(v:multi_a(1," in d
    # the one descriptor engine derives the same scripts (receive and change, several indexes)
    desc = parse_descriptor(d, require_checksum=True)
    for index in (0, 1, 77):
        assert desc.address(index, 0, network="regtest") == v.address(index)
        assert desc.address(index, 1, network="regtest") == v.change_address(index)
    back = Vault.from_descriptor(d, network=NET)
    assert back == v and back.policy_id == v.policy_id and back.n == 3
    receive, change = v.descriptors()
    assert Vault.from_descriptor(receive, network=NET) == v == Vault.from_descriptor(change, network=NET)


def test_policy_id_covers_every_part_of_the_recovery_policy():
    base = year_vault()
    ids = {base.policy_id}
    variants = [
        year_vault(lock=Timelock.older(52_561)),
        year_vault(lock=Timelock.after(900_000)),
        Vault.multisig(2, keys("p", 3), network=NET, recovery=[Recovery(2, keys("r", 2), Timelock.older(52_560))]),
        Vault.multisig(2, keys("p", 3), network=NET, recovery=[Recovery(1, keys("r", 2)[::-1], Timelock.older(52_560))]),
        Vault.multisig(2, keys("p", 3), network=NET, recovery=[Recovery(1, [key("r0"), key("x9")], Timelock.older(52_560))]),
        Vault.multisig(2, keys("p", 3), script="wsh", sorted=False, network=NET),
        year_vault("tr"),
    ]
    for v in variants:
        ids.add(v.policy_id)
        assert not v.same_policy(base)
    assert len(ids) == len(variants) + 1
    assert year_vault().same_policy(base)


def test_decaying_threshold_in_tr_reuses_the_primary_keys():
    p = keys("p", 3, "tr")
    v = Vault.multisig(2, p, script="tr", network=NET, recovery=[Recovery(1, p, Timelock.older(4_320))])
    assert len(v.cosigners) == 3 and v.recovery[0].keys == (0, 1, 2)
    d = v.derive(0)
    assert len(d.leaves) == 2 and d.leaves[1].keys == (0, 1, 2)
    assert d.leaf_hashes_of(0) == (d.leaves[0].leaf_hash, d.leaves[1].leaf_hash)
    assert parse_descriptor(v.descriptor()).address(0, network="regtest") == v.address(0)


def test_several_recovery_paths_in_wsh_and_tr():
    for script in ("wsh", "tr"):
        v = Vault.multisig(2, keys("p", 3, script), script=script, network=NET, recovery=[
            Recovery(2, keys("r", 2, script), Timelock.older(4_320)),
            Recovery(1, keys("s", 1, script), Timelock.older_seconds(512 * 1000)),
            Recovery(1, keys("t", 2, script), Timelock.after(1_000_000)),
        ])
        assert len(v.cosigners) == 8
        desc = parse_descriptor(v.descriptor())
        assert desc.address(3, network="regtest") == v.address(3)
        assert Vault.from_descriptor(v.descriptor(), network=NET) == v
        if script == "wsh":
            assert "or_i(and_v(v:multi(2," in v.descriptor()
        else:
            assert len(v.derive(3).leaves) == 4


@pytest.mark.parametrize("make,match", [
    (lambda: Timelock.older(0), "1 to 65,535 blocks"),
    (lambda: Timelock.older(65_536), "1 to 65,535 blocks"),
    (lambda: Timelock(LockKind.OLDER, 1 << 23 | 5), "BIP68"),
    (lambda: Timelock(LockKind.OLDER, 1 << 22), "BIP68"),
    (lambda: Timelock.older_seconds(1000), "multiple of 512"),
    (lambda: Timelock.after(0), "out of range"),
    (lambda: Timelock.after(2 ** 31), "out of range"),
    (lambda: Timelock("sometime", 5), "'older'"),
])
def test_locks_outside_consensus_ranges_are_refused(make, match):
    with pytest.raises(PolicyError, match=match):
        make()


def test_lock_meaning():
    assert Timelock.older(52_560).describe() == "52,560 blocks after the coin confirmed (about 365 days)"
    t = Timelock.older_seconds(512 * 10)
    assert t.is_time and t.is_relative and t.sequence() == (1 << 22) | 10
    assert Timelock.after(500_000_000).is_time and not Timelock.after(800_000).is_time
    with pytest.raises(PolicyError, match="nLockTime"):
        Timelock.after(800_000).sequence()


@pytest.mark.parametrize("build,match", [
    # wsh: one key per script (miniscript), so recovery keys differ from primary ones
    (lambda: Vault.multisig(2, keys("p", 3), network=NET, recovery=[Recovery(1, keys("p", 2), Timelock.older(9))]),
     "in wsh every key appears once"),
    (lambda: Vault.multisig(2, keys("p", 3), network=NET, recovery=[
        Recovery(1, keys("r", 2), Timelock.older(9)), Recovery(1, keys("r", 1), Timelock.older(99))]),
     "recovery path 2"),
    (lambda: Vault.multisig(2, keys("p", 3), sorted=True, network=NET, recovery=[Recovery(1, keys("r", 2), Timelock.older(9))]),
     "sortedmulti"),
    (lambda: Vault.multisig(2, keys("p", 3, "sh-wsh"), script="sh-wsh", network=NET,
                            recovery=[Recovery(1, keys("r", 2, "sh-wsh"), Timelock.older(9))]), "wsh or tr"),
    (lambda: Vault.multisig(2, keys("p", 3), network=NET, recovery=[Recovery(3, keys("r", 2), Timelock.older(9))]),
     "threshold"),
    (lambda: Vault.multisig(2, keys("p", 3, "tr"), script="tr", network=NET, recovery=[
        Recovery(1, keys("r", 2, "tr"), Timelock.older(9)), Recovery(1, keys("r", 2, "tr"), Timelock.older(9))]),
     "the same"),
    (lambda: Vault.multisig(2, keys("p", 3, "tr"), script="tr", network=NET,
                            recovery=[Recovery(2, keys("p", 3, "tr"), Timelock.older(9))]), "could never help"),
    (lambda: Vault.multisig(2, keys("p", 3), network=NET, recovery=[Recovery(1, keys("r", 21), Timelock.older(9))]),
     "at most 20"),
    (lambda: Vault.multisig(2, keys("p", 3), network=NET, recovery=[Recovery(1, [], Timelock.older(9))]), "at least one"),
    (lambda: Vault.multisig(2, keys("p", 3), network=NET, recovery=[(1, keys("r", 2), 9)]), "Recovery"),
    (lambda: Vault.multisig(2, keys("p", 3), network=NET, recovery=[Recovery(1, keys("r", 2), 52_560)]), "Timelock"),
    (lambda: Vault(2, keys("p", 3), "wsh", False, NET, primary_n=2), "only for vaults with recovery"),
    (lambda: Vault(2, keys("p", 3) + keys("r", 2), "wsh", False, NET, primary_n=3,
                   recovery=(RecoveryPath(1, (3,), Timelock.older(9)),)), "must be a key of some recovery path"),
])
def test_bad_recovery_policies_are_refused(build, match):
    with pytest.raises(PolicyError, match=match):
        build()


def test_recovery_keys_are_checked_like_cosigners():
    p = keys("p", 3)
    main = TestKeyholder.from_label("m0", Network.MAINNET).cosigner("wsh")
    with pytest.raises(Exception, match="mix mainnet"):
        Vault.multisig(2, p, network=NET, recovery=[Recovery(1, [main], Timelock.older(9))])


@pytest.mark.parametrize("text", [
    # a recovery path without any lock
    "wsh(or_d(multi(2,{p0},{p1},{p2}),multi(1,{r0},{r1})))",
    # a timelock with no signature after it is refused by miniscript itself
    "wsh(or_d(multi(2,{p0},{p1},{p2}),and_v(v:multi(1,{r0},{r1}),older(0))))",
    # the lock before the keys: valid miniscript, not a shape msigvault writes
    "wsh(or_d(multi(2,{p0},{p1},{p2}),and_v(v:older(10),multi(1,{r0},{r1}))))",
    # a spendable internal key
    "tr({r1},{{sortedmulti_a(2,{p0},{p1},{p2}),and_v(v:multi_a(1,{r0}),older(10))}})",
    # recovery leaf first
    "tr(50929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0,{{and_v(v:multi_a(1,{r0}),older(10)),sortedmulti_a(2,{p0},{p1},{p2})}})",
])
def test_other_miniscript_shapes_are_watch_only(text):
    script = "tr" if text.startswith("tr") else "wsh"
    ks = {f"p{i}": f"{c}/<0;1>/*" for i, c in enumerate(keys("p", 3, script))}
    ks.update({f"r{i}": f"{c}/<0;1>/*" for i, c in enumerate(keys("r", 2, script))})
    with pytest.raises(InvalidDescriptor):
        Vault.from_descriptor(text.format(**ks), network=NET, require_checksum=False)


def test_recovery_vault_lookups():
    v = year_vault()
    spk = v.script_pubkey(12, change=True)
    assert v.find(spk) == (1, 12)
    d = v.derive(12, change=True)
    assert d.pubkeys == tuple(c.pubkey_at(1, 12) for c in v.cosigners) and d.signers == (0, 1, 2, 3, 4)
    assert str(v) == "2-of-3 wsh vault with 1 recovery path(s) on regtest"


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_vault_file_carries_recovery_paths_and_registrations(tmp_path, script):
    from msigvault.errors import RegistrationError
    from msigvault.policy.registration import Registration
    from msigvault.vaultfile import VaultFile, VaultFileError, load_vault_file

    v = year_vault(script)
    recovery_holder = TestKeyholder.from_label("r1", NET)
    regs = (Registration.create(v, TestKeyholder.from_label("p0", NET).root, name="treasury"),
            Registration.create(v, recovery_holder.root, name="treasury"))  # a recovery keyholder registers too
    path = VaultFile(v, "treasury", registrations=regs).save(tmp_path / "v.json")
    obj = json.loads(path.read_text())
    assert obj["recovery"] == [{"threshold": 1, "cosigners": [c.fingerprint.hex() for c in v.cosigners[3:]],
                                "lock": {"kind": "older", "value": 52_560,
                                         "text": "52,560 blocks after the coin confirmed (about 365 days)"}}]
    loaded = load_vault_file(path)
    assert loaded.vault == v and loaded.vault.recovery == v.recovery
    assert loaded.registered(recovery_holder.fingerprint).vault == v
    # the words must agree with the descriptor
    obj["recovery"][0]["threshold"] = 2
    path.write_text(json.dumps(obj))
    with pytest.raises(VaultFileError, match="'recovery' field"):
        load_vault_file(path)
    # a registration of the plain 2-of-3 does not verify for the vault with a recovery path
    plain = Vault.multisig(2, keys("p", 3, script), script=script, sorted=script == "tr", network=NET)
    reg = Registration.create(plain, TestKeyholder.from_label("p0", NET).root, name="treasury")
    with pytest.raises(RegistrationError):
        reg.verify(v, name="treasury")
    # an old file (no recovery field, plain vault) still loads
    old = VaultFile(plain, "old").save(tmp_path / "old.json")
    assert "recovery" not in json.loads(old.read_text()) and load_vault_file(old).vault == plain


def test_other_wallets_formats_refuse_recovery_vaults():
    from msigvault.formats import FormatError, export_vault

    v = year_vault()
    assert export_vault(v, "descriptor").startswith("wsh(or_d(")
    for fmt in ("coldcard", "caravan", "bip388", "specter", "electrum", "bsms"):
        with pytest.raises(FormatError, match="recovery paths"):
            export_vault(v, fmt)
