"""Migration to a successor vault through the library: a changed key set and a changed threshold
migrate on the in-process regtest chain (libbitcoinkernel validates the blocks); the signer shows
a successor only when this keyholder's registration of it verifies and the output derives from it;
look-alike, beyond-the-limit, tampered and substituted successors are payments or refusals; the fee
rules; the planner's limits; a plan whose PSBT changed is refused."""

from __future__ import annotations

import json
import os
import pytest
from embit.util import secp256k1 as _secp

from msigvault.errors import FeeLimitExceeded, RegistrationError
from msigvault.keys.cosigner import Cosigner
from msigvault.lifecycle.migrate import (
    MigrationError,
    MigrationFileError,
    load_plan,
    load_successors,
    plan_migration,
    write_plan,
)
from msigvault.network import Network
from msigvault.policy.registration import REGISTRATION_BRANCH, Registration, registration_message
from msigvault.policy.vault import Vault
from msigvault.psbt.signer import SignerPolicy, prepare, sign
from msigvault.regtest import RegtestChain
from msigvault.standardness import MAX_STANDARD_TX_WEIGHT
from msigvault.testing.keyholders import TestKeyholder
from msigvault.types import Utxo
from msigvault.vaultfile import VaultFile

NET = Network.REGTEST
K = {n: TestKeyholder.from_label(f"migrate-{n}") for n in ("a", "b", "c", "d", "e", "x")}


def vault_file(name: str, m: int, holders: str, script: str = "wsh", *, account: int = 0,
               index_limit: int = 1_000) -> VaultFile:
    vault = Vault.multisig(m, [K[h].cosigner(script, account) for h in holders], script=script, network=NET)
    regs = tuple(Registration.create(vault, K[h].root, name=name, index_limit=index_limit) for h in holders)
    return VaultFile(vault, name, registrations=regs)


def fake_utxos(vault: Vault, amounts: "list[int]") -> "list[Utxo]":
    return [Utxo(os.urandom(32).hex(), i % 3, a, vault.derive_branch(0, i).script_pubkey, 0, i)
            for i, a in enumerate(amounts)]


OLD = vault_file("reserve", 2, "abc")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with RegtestChain(datadir=tmp_path_factory.mktemp("migrate") / "chain") as c:
        c.mine(101)
        yield c


def fund(chain, vault: Vault, amounts: "list[int]") -> "list[Utxo]":
    from msigvault.cli.chain import vault_utxos

    for i, amount in enumerate(amounts):
        chain.fund(vault.address(i), [amount])
    return vault_utxos(chain, vault)


def migrate_on_chain(chain, old: VaultFile, successor: VaultFile, signers: str, amounts: "list[int]"):
    """Fund ``old``, plan, sign by ``signers`` with the successor given, finalize, mine; the plan."""
    utxos = fund(chain, old.vault, amounts)
    plan = plan_migration(old, successor, utxos, fee_rate=2, max_weight=4_000)
    for batch in plan.batches:
        partials = []
        for h in signers:
            request = prepare(batch.psbt, old.registered(K[h].fingerprint), fingerprint=K[h].fingerprint,
                              successors=[successor.registered(K[h].fingerprint)])
            (shown,) = request.summary.successors
            assert (shown.vault_name, shown.policy_id, shown.branch, shown.vault_index) == (
                successor.name, successor.vault.policy_id, 0, batch.successor_index)
            assert f"TO SUCCESSOR VAULT {successor.name} (policy id {successor.vault.policy_id})" \
                in request.summary.text()
            assert "PAY" not in request.summary.text()
            partials.append(request.sign(K[h].root)[0])
        tx = old.vault.extract(old.vault.finalize(old.vault.combine(partials)))
        assert tx.verified_by_kernel
        chain.submit([tx.raw])
    for u in utxos:
        assert chain.balance(u.script_pubkey) == 0
    for batch in plan.batches:
        assert chain.balance(successor.vault.address(batch.successor_index)) == batch.amount_out
    return plan


def test_a_changed_key_set_migrates(chain):
    old = vault_file("keys-old", 2, "abc", account=3)
    successor = vault_file("keys-new", 2, "abd", account=3)  # carol leaves, dave joins
    plan = migrate_on_chain(chain, old, successor, "ab", [90_000, 80_000, 70_000, 60_000, 50_000, 40_000,
                                                          30_000, 20_000, 10_000, 9_000])
    assert len(plan.batches) == 2 and sum(len(b.coins) for b in plan.batches) == 10


def test_a_changed_threshold_migrates(chain):
    old = vault_file("thr-old", 2, "abc", account=4)
    successor = vault_file("thr-new", 3, "abc", account=4)  # same keys, 3-of-3
    plan = migrate_on_chain(chain, old, successor, "bc", [150_000, 75_000, 25_000])
    assert len(plan.batches) == 1 and plan.total_in == 250_000


def _batch(successor: VaultFile, *, old: VaultFile = OLD, to: "str | None" = None, fee_rate: float = 2):
    from msigvault.psbt.creator import create_sweep

    utxos = fake_utxos(old.vault, [200_000, 100_000])
    return create_sweep(old.vault, utxos, to or successor.vault.address(0), fee_rate=fee_rate, fee_limits=None)


def _request(psbt, successors, holder: str = "a", policy: SignerPolicy = SignerPolicy(allow_witness_utxo_only=True)):
    return prepare(psbt, OLD.registered(K[holder].fingerprint), fingerprint=K[holder].fingerprint,
                   policy=policy, successors=successors)


SUCC = vault_file("reserve-2026", 3, "abcde", "tr")


def test_without_the_successor_the_output_is_a_payment():
    r = _request(_batch(SUCC), [])
    assert r.summary.successors == () and "PAY" in r.summary.text() and "SUCCESSOR" not in r.summary.text()
    assert r.summary.sent_out == r.summary.outputs[0].amount, "it counts as sent"


def test_a_successor_registered_by_another_keyholder_is_not_used():
    r = _request(_batch(SUCC), [SUCC.registered(K["b"].fingerprint)])
    assert r.summary.successors == () and "PAY" in r.summary.text()
    assert any("not this key's" in n for n in r.summary.notes)


def test_a_look_alike_successor_is_a_payment():
    # an attacker's vault with the same name, threshold and script, other keys: its address is PAY
    fake = vault_file("reserve-2026", 3, "xbcde", "tr")
    r = _request(_batch(SUCC, to=fake.vault.address(0)), [SUCC.registered(K["a"].fingerprint)])
    assert r.summary.successors == () and "PAY" in r.summary.text()
    # and the successor's own keys at another threshold
    other = vault_file("reserve-2026", 2, "abcde", "tr")
    r = _request(_batch(SUCC, to=other.vault.address(0)), [SUCC.registered(K["a"].fingerprint)])
    assert r.summary.successors == ()


def test_an_index_beyond_the_registered_limit_is_a_payment():
    limited = vault_file("reserve-2026", 3, "abcde", "tr", index_limit=5)
    ok = _request(_batch(limited, to=limited.vault.address(4)), [limited.registered(K["a"].fingerprint)])
    assert [s.vault_index for s in ok.summary.successors] == [4]
    far = _request(_batch(limited, to=limited.vault.address(5)), [limited.registered(K["a"].fingerprint)])
    assert far.summary.successors == () and "PAY" in far.summary.text()


def test_a_tampered_successor_is_not_used(tmp_path):
    good = SUCC.registered(K["a"].fingerprint)
    changed = vault_file("reserve-2026", 2, "abcde", "tr").vault  # the threshold edited after registering
    forged = object.__new__(type(good))
    for k, v in (("vault", changed), ("name", good.name), ("registration", good.registration)):
        object.__setattr__(forged, k, v)
    r = _request(_batch(SUCC, to=changed.address(0)), [forged])
    assert r.summary.successors == () and any("does not verify" in n for n in r.summary.notes)
    # the file a CLI signer is given: edited descriptor -> not loaded, a warning, no successor
    path = tmp_path / "successor.json"
    SUCC.save(path)
    obj = json.loads(path.read_text())
    obj["descriptor"] = changed.descriptor()
    obj["policy_id"] = changed.policy_id  # fixed up: the registration no longer verifies
    path.write_text(json.dumps(obj))
    found, warnings = load_successors([path], K["a"].fingerprint)
    assert found == () and len(warnings) == 1 and "shown as PAY" in warnings[0]


def test_a_substituted_entry_for_this_keyholder_is_refused_at_signing():
    """The successor lists alice's fingerprint with the attacker's xpub and a registration the
    attacker made for it: shown, but the unlocked key does not derive that xpub, so nothing is signed."""
    real = [K[h].cosigner("tr") for h in "abcde"]
    evil = K["x"].cosigner("tr")
    swapped = Cosigner.parse(str(evil).replace(evil.fingerprint.hex(), K["a"].fingerprint.hex(), 1))
    vault = Vault.multisig(3, [swapped] + real[1:], script="tr", network=NET)
    account = K["x"].root.derive(evil.path)
    secret = account.child(REGISTRATION_BRANCH).child(0).key[1:]
    msg = registration_message(vault, name="reserve-2026", fingerprint=K["a"].fingerprint, index_limit=1000)
    sig = _secp.schnorrsig_sign(msg, _secp.keypair_create(secret), None, os.urandom(32))
    forged = VaultFile(vault, "reserve-2026", registrations=(Registration(K["a"].fingerprint, 1000, sig),))
    psbt = _batch(forged, to=vault.address(0))
    request = _request(psbt, [forged.registered(K["a"].fingerprint)])
    assert len(request.summary.successors) == 1  # the file alone cannot tell
    with pytest.raises(RegistrationError, match="different xpub"):
        request.sign(K["a"].root)


def test_the_fee_rules_apply_to_a_migration():
    # a normal batch: not a fee burn, nothing refused, the fee measured against what moves
    r = _request(_batch(SUCC), [SUCC.registered(K["a"].fingerprint)])
    assert not any("no payment leaves" in n for n in r.summary.notes)
    # an excessive fee is refused, successor or not
    greedy = _batch(SUCC, fee_rate=150)
    with pytest.raises(FeeLimitExceeded, match="more than 10%"):
        _request(greedy, [SUCC.registered(K["a"].fingerprint)], policy=SignerPolicy(allow_witness_utxo_only=True,
                                                                                      max_fee_rate=10_000))
    with pytest.raises(FeeLimitExceeded):
        sign(greedy, OLD.registered(K["a"].fingerprint), K["a"].root,
             policy=SignerPolicy(allow_witness_utxo_only=True, max_fee_rate=10_000),
             successors=[SUCC.registered(K["a"].fingerprint)])


def test_the_plan_batches_under_the_weight_limit_and_respects_the_budget():
    from msigvault.psbt.weight import input_weight, tx_weight

    utxos = fake_utxos(OLD.vault, [50_000 + 1_000 * i for i in range(40)])
    plan = plan_migration(OLD, SUCC, utxos, fee_rate=2, max_weight=8_000, fee_limits=None)
    assert sorted(c for b in plan.batches for c in b.coins) == sorted(u.outpoint for u in utxos)
    for b in plan.batches:
        weight = tx_weight([input_weight("wsh", 2, 3)] * len(b.coins), [34])
        assert weight <= 8_000 and b.amount_out == b.amount_in - b.fee
    assert len(plan.batches) == -(-40 // max(len(b.coins) for b in plan.batches))
    assert [b.successor_index for b in plan.batches] == list(range(len(plan.batches)))
    with pytest.raises(MigrationError, match="above the budget"):
        plan_migration(OLD, SUCC, utxos, fee_rate=2, max_weight=8_000, fee_limits=None, fee_budget=plan.total_fee - 1)
    assert plan_migration(OLD, SUCC, utxos, fee_rate=2, fee_budget=plan.total_fee,
                          fee_limits=None).total_fee <= plan.total_fee  # one standard-weight batch is cheaper


@pytest.mark.parametrize("case", ["empty", "same", "index", "weight"])
def test_the_planner_refuses(case):
    utxos = fake_utxos(OLD.vault, [100_000])
    kwargs: dict = {"fee_rate": 2}
    successor = SUCC
    if case == "empty":
        utxos = []
    elif case == "same":
        successor = OLD
    elif case == "index":
        successor = vault_file("reserve-2026", 3, "abcde", "tr", index_limit=5)
        kwargs["start_index"] = 5
    else:
        kwargs["max_weight"] = MAX_STANDARD_TX_WEIGHT + 1
    with pytest.raises(MigrationError):
        plan_migration(OLD, successor, utxos, **kwargs)


def test_a_plan_whose_psbt_changed_is_refused(tmp_path):
    utxos = fake_utxos(OLD.vault, [100_000, 90_000])
    plan = plan_migration(OLD, SUCC, utxos, fee_rate=2)
    path = write_plan(plan, tmp_path / "rot")
    loaded = load_plan(path, OLD, SUCC)
    assert len(loaded.psbts) == 1 and loaded.psbts[0].serialize() == plan.batches[0].psbt.serialize()
    other = _batch(SUCC, to=vault_file("evil", 2, "xde").vault.address(0))
    (tmp_path / "rot" / "batch-001.psbt").write_bytes(other.serialize())
    with pytest.raises(MigrationFileError, match="SHA-256"):
        load_plan(path, OLD, SUCC)
    with pytest.raises(MigrationFileError, match="another"):
        load_plan(path, OLD, vault_file("reserve-2027", 2, "abd", "tr"))
    # a plan edited to match a changed PSBT is still checked against the successor address
    data = json.loads(path.read_text())
    import hashlib

    data["batches"][0]["psbt_sha256"] = hashlib.sha256(other.serialize()).hexdigest()
    path.write_text(json.dumps(data))
    with pytest.raises(MigrationFileError, match="successor's receive address"):
        load_plan(path, OLD, SUCC)


def test_an_interrupted_start_is_completed_with_the_same_id_and_a_plan_starts_once(tmp_path):
    from msigvault.coordinator.audit import Identity
    from msigvault.coordinator.db import Database
    from msigvault.lifecycle.migrate import migration_status, start_migration

    utxos = fake_utxos(OLD.vault, [60_000 + i for i in range(20)])
    path = write_plan(plan_migration(OLD, SUCC, utxos, fee_rate=2, max_weight=6_000, fee_limits=None), tmp_path / "r")
    loaded = load_plan(path, OLD, SUCC)
    assert len(loaded.psbts) >= 2
    co_db = Database.open(f"sqlite:///{tmp_path / 'co.sqlite'}")
    from msigvault.coordinator.sessions import Coordinator

    co = Coordinator(co_db, Identity.load_or_create(tmp_path / "co.key"))
    co.new_session(OLD, loaded.psbts[0], session_id="mig-test-001")  # the start was interrupted here
    status = start_migration(co, loaded, OLD, SUCC, migration_id="mig-test")
    assert [b.session_id for b in status.batches] == [f"mig-test-{i:03d}" for i in range(1, len(loaded.psbts) + 1)]
    assert status.status == "in-progress" and migration_status(co, "mig-test").old_vault_coins is None
    with pytest.raises(MigrationError, match="started already as migration mig-test"):
        start_migration(co, loaded, OLD, SUCC, migration_id="mig-other")
    with pytest.raises(MigrationError, match="no migration"):
        migration_status(co, "mig-none")
    entries = [e for e in co.audit_entries() if e["event"] == "migration.started"]
    assert len(entries) == 1 and entries[0]["data"]["successor"]["policy_id"] == SUCC.vault.policy_id
    assert co.verify_log().count == len(co.audit_entries())


def test_migration_status_text_escapes_names_from_the_database():
    """Names and ids in a migration's status come from the coordinator database: a control
    sequence or a bidi override stored there is shown escaped, never sent to the terminal."""
    from msigvault.lifecycle.migrate import BatchStatus, MigrationStatus

    status = MigrationStatus("mig-\x1b[2J", "in-progress", "old\u202ename", "a" * 64, "succ\x9b31m", "b" * 64,
                             (BatchStatus(1, "s-\r1", "open", None, 1000),))
    text = status.text()
    for raw in ("\x1b", "\u202e", "\x9b", "\r"):
        assert raw not in text
    assert "\\u001b[2J" in text and "\\u202e" in text and "\\x9b" in text and "s-\\r1" in text
