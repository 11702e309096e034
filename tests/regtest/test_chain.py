"""RegtestChain: blocks built here, judged by libbitcoinkernel (no mocks anywhere)."""

import os
import subprocess
import sys
import time

import pbk  # the regtest extra must be installed: a missing extra fails this module, never skips
import pytest
from embit.networks import NETWORKS
from embit.script import Script, Witness, p2wsh
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from msigvault.errors import ChainError, InvalidAddress, NetworkMismatch
from msigvault.regtest import (
    ANYONE_CAN_SPEND_SCRIPT_PUBKEY,
    BlockRejected,
    RegtestChain,
    spend_anyone_can_spend,
)
from msigvault.regtest.blocks import COIN, block_subsidy
from msigvault.types import Utxo

REGTEST_GENESIS = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
OP_TRUE = b"\x51"
OTHER_WITNESS_SCRIPT = b"\x52\x75\x51"  # OP_2 OP_DROP OP_TRUE: another anyone-can-spend
OTHER = p2wsh(Script(OTHER_WITNESS_SCRIPT)).data
FALSE_WITNESS_SCRIPT = b"\x00"  # OP_0: leaves false on the stack, never spendable
NEVER = p2wsh(Script(FALSE_WITNESS_SCRIPT)).data
NON_FINAL = 0xFFFFFFFE  # any sequence below 0xFFFFFFFF makes nLockTime count


def spend(coins, outputs, witness_script=OTHER_WITNESS_SCRIPT, *, version=2, locktime=0,
          sequence=0xFFFFFFFF) -> bytes:
    vin = [TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=sequence,
                            witness=Witness([witness_script])) for c in coins]
    vout = [TransactionOutput(amount, Script(spk)) for spk, amount in outputs]
    return Transaction(version=version, vin=vin, vout=vout, locktime=locktime).serialize()


def txid(raw: bytes) -> str:
    return Transaction.parse(raw).txid().hex()


def snapshot(chain):
    return (chain.height, chain.tip, chain.median_time_past,
            {spk: chain.utxos(spk) for spk in (OTHER, NEVER, ANYONE_CAN_SPEND_SCRIPT_PUBKEY)})


@pytest.fixture
def chain():
    with RegtestChain() as c:
        yield c


@pytest.fixture
def funded(chain):
    """A chain with two confirmed 1 BTC outputs paying OTHER."""
    return chain, chain.fund(OTHER, [COIN, COIN])


# -- mining ----------------------------------------------------------------------------------

def test_new_chain_is_at_regtest_genesis(chain):
    assert chain.height == 0
    assert chain.tip == REGTEST_GENESIS
    assert chain.utxos(ANYONE_CAN_SPEND_SCRIPT_PUBKEY) == []


def test_mining_moves_height_and_tip(chain):
    hashes = chain.mine(3)
    assert len(hashes) == 3 and len(set(hashes)) == 3
    assert chain.height == 3
    assert chain.tip == hashes[-1]
    assert chain.mine(0) == [] and chain.height == 3
    more = chain.mine_until(10)
    assert len(more) == 7 and chain.height == 10 and chain.tip == more[-1]


def test_mine_pays_coinbase_to_an_address_or_script(chain):
    address = Script(OTHER).address(NETWORKS["regtest"])
    chain.mine(1, to=address)
    chain.mine(1, to=OTHER)
    coins = chain.utxos(OTHER)
    assert [c.amount for c in coins] == [50 * COIN, 50 * COIN]
    assert chain.utxos(address) == coins
    assert chain.balance(OTHER) == 100 * COIN
    assert Transaction.parse(coins[0].prev_tx).txid().hex() == coins[0].txid


def test_subsidy_halves_every_150_blocks(chain):
    chain.mine_until(148)
    chain.mine(2, to=OTHER)  # heights 149 and 150
    assert [c.amount for c in chain.utxos(OTHER)] == [50 * COIN, 25 * COIN]
    assert block_subsidy(300) == 12.5 * COIN


def test_block_times_increase_and_median_time_past_follows(chain):
    times = []
    for _ in range(12):
        chain.mine()
        times.append(chain.tip_time)
    assert times == sorted(set(times))
    assert chain.median_time_past == sorted(times[-11:])[5]


# -- fund ------------------------------------------------------------------------------------

def test_fund_mines_to_maturity_and_returns_confirmed_utxos(chain):
    utxos = chain.fund(OTHER, [100_000, 250_000, 7])
    assert chain.height == 101  # coinbase of block 1 matures for block 101, which funds
    assert [(u.vout, u.amount, u.script_pubkey) for u in utxos] == [
        (0, 100_000, OTHER), (1, 250_000, OTHER), (2, 7, OTHER)]
    assert {u.txid for u in utxos} == {txid(utxos[0].prev_tx)}
    assert chain.get_tx(utxos[0].txid) == utxos[0].prev_tx
    assert chain.utxos(OTHER) == utxos
    assert chain.balance(OTHER) == 350_007


def test_fund_accepts_an_address(chain):
    address = Script(OTHER).address(NETWORKS["regtest"])
    [utxo] = chain.fund(address, [5000])
    assert utxo.script_pubkey == OTHER and chain.utxos(address) == [utxo]


def test_fund_rejects_foreign_and_malformed_addresses(chain):
    with pytest.raises(NetworkMismatch):
        chain.fund(Script(OTHER).address(NETWORKS["main"]), [5000])
    with pytest.raises(InvalidAddress):
        chain.fund("bcrt1qnotanaddress", [5000])
    with pytest.raises(ChainError):
        chain.fund(OTHER, [0])
    with pytest.raises(ChainError):
        chain.fund(OTHER, [])
    assert chain.height == 0


def test_fund_can_spend_more_than_one_coinbase(chain):
    [utxo] = chain.fund(OTHER, [120 * COIN])
    assert utxo.amount == 120 * COIN
    assert chain.balance(OTHER) == 120 * COIN


# -- valid spends ----------------------------------------------------------------------------

def test_valid_spend_is_accepted_and_the_utxo_index_follows(funded):
    chain, (a, b) = funded
    fee = 10_000
    raw = spend([a], [(OTHER, 60_000_000), (NEVER, 40_000_000 - fee)])
    height = chain.height
    block_hash = chain.submit([raw])
    assert chain.tip == block_hash and chain.height == height + 1
    new = txid(raw)
    assert [u.outpoint for u in chain.utxos(OTHER)] == [b.outpoint, f"{new}:0"]
    assert [u.outpoint for u in chain.utxos(NEVER)] == [f"{new}:1"]
    assert chain.utxos(OTHER)[1].prev_tx == raw == chain.get_tx(new)
    # the coinbase claimed subsidy + fee, paid to the chain's own wallet
    newest_own = chain.utxos(ANYONE_CAN_SPEND_SCRIPT_PUBKEY)[-1]
    assert newest_own.amount == block_subsidy(chain.height) + fee


def test_hex_transactions_and_chained_spends_in_one_block(funded):
    chain, (a, _) = funded
    first = spend([a], [(OTHER, COIN - 1000)])
    parent = Utxo(txid=txid(first), vout=0, amount=COIN - 1000, script_pubkey=OTHER)
    second = spend([parent], [(OTHER, COIN - 2000)])
    chain.submit([first.hex(), second])
    assert [u.txid for u in chain.utxos(OTHER)][-1] == txid(second)
    assert chain.utxos(ANYONE_CAN_SPEND_SCRIPT_PUBKEY)[-1].amount == \
        block_subsidy(chain.height) + 2000


def test_spend_anyone_can_spend_helper(chain):
    [coin] = chain.fund(chain.wallet_address, [COIN])
    raw = spend_anyone_can_spend([coin], [(OTHER, COIN)])
    chain.submit([raw])
    assert chain.utxos(OTHER)[0].txid == txid(raw)


# -- rejections leave the chain unchanged ----------------------------------------------------

def test_double_spend_is_rejected_with_cores_reason(funded):
    chain, (a, _) = funded
    chain.submit([spend([a], [(OTHER, COIN)])])
    before = snapshot(chain)
    with pytest.raises(BlockRejected) as err:
        chain.submit([spend([a], [(NEVER, COIN)])])
    assert err.value.reason == "bad-txns-inputs-missingorspent"
    assert "bad-txns-inputs-missingorspent" in str(err.value)
    assert isinstance(err.value, ChainError)
    assert snapshot(chain) == before


def test_conflicting_spends_in_one_block_are_rejected(funded):
    chain, (a, _) = funded
    before = snapshot(chain)
    with pytest.raises(BlockRejected) as err:
        chain.submit([spend([a], [(OTHER, COIN)]), spend([a], [(NEVER, COIN)])])
    assert err.value.reason == "bad-txns-inputs-missingorspent"
    assert snapshot(chain) == before


def test_missing_input_is_rejected(funded):
    chain, _ = funded
    ghost = Utxo(txid="11" * 32, vout=0, amount=COIN, script_pubkey=OTHER)
    before = snapshot(chain)
    with pytest.raises(BlockRejected) as err:
        chain.submit([spend([ghost], [(OTHER, COIN)])])
    assert err.value.reason == "bad-txns-inputs-missingorspent"
    assert snapshot(chain) == before


def test_invalid_script_is_rejected(chain):
    [coin] = chain.fund(NEVER, [COIN])
    before = snapshot(chain)
    with pytest.raises(BlockRejected) as err:
        chain.submit([spend([coin], [(OTHER, COIN)], FALSE_WITNESS_SCRIPT)])
    # recent Core says "block-script-verify-flag-failed", older "mandatory-script-verify-flag-failed"
    assert "script-verify-flag-failed" in err.value.reason
    assert "false/empty top stack element" in err.value.reason
    assert snapshot(chain) == before


def test_wrong_witness_script_is_rejected(funded):
    chain, (a, _) = funded
    with pytest.raises(BlockRejected) as err:
        chain.submit([spend([a], [(OTHER, COIN)], OP_TRUE)])
    assert "Witness program hash mismatch" in err.value.reason


def test_overspend_is_rejected(funded):
    chain, (a, _) = funded
    with pytest.raises(BlockRejected) as err:
        chain.submit([spend([a], [(OTHER, COIN + 1)])])
    assert err.value.reason == "bad-txns-in-belowout"


def test_premature_coinbase_spend_is_rejected(chain):
    chain.mine(1, to=OTHER)
    [coinbase] = chain.utxos(OTHER)
    with pytest.raises(BlockRejected) as err:
        chain.submit([spend([coinbase], [(OTHER, coinbase.amount)])])
    assert err.value.reason == "bad-txns-premature-spend-of-coinbase"
    chain.mine(99)  # the next block, at height 101, is 100 blocks after the coinbase
    chain.submit([spend([coinbase], [(OTHER, coinbase.amount)])])


def test_same_rejected_transaction_is_judged_again(funded):
    chain, _ = funded
    ghost = Utxo(txid="22" * 32, vout=0, amount=COIN, script_pubkey=OTHER)
    bad = spend([ghost], [(OTHER, COIN)])
    for _ in range(2):  # a second identical attempt must not be waved off as "duplicate"
        with pytest.raises(BlockRejected) as err:
            chain.submit([bad])
        assert err.value.reason == "bad-txns-inputs-missingorspent"


def test_garbage_is_refused_before_mining(chain):
    with pytest.raises(ChainError):
        chain.submit([b"\x00\x01"])
    with pytest.raises(ChainError):
        chain.submit(b"\x02\x00\x00\x00")  # not a list
    assert chain.height == 0


# -- timelocks -------------------------------------------------------------------------------

def test_height_locktime_is_enforced_until_the_height(funded):
    chain, (a, _) = funded
    locktime = chain.height + 3  # final in a block whose height is above the locktime
    raw = spend([a], [(OTHER, COIN)], locktime=locktime, sequence=NON_FINAL)
    while chain.height + 1 <= locktime:
        before = snapshot(chain)
        with pytest.raises(BlockRejected) as err:
            chain.submit([raw])
        assert err.value.reason == "bad-txns-nonfinal"
        assert snapshot(chain) == before
        chain.mine()
    chain.submit([raw])
    assert chain.get_tx(txid(raw)) == raw


def test_locktime_is_ignored_when_every_sequence_is_final(funded):
    chain, (a, _) = funded
    chain.submit([spend([a], [(OTHER, COIN)], locktime=chain.height + 50)])


def test_time_locktime_is_enforced_against_median_time_past(funded):
    chain, (a, _) = funded
    locktime = chain.median_time_past + 2000
    raw = spend([a], [(OTHER, COIN)], locktime=locktime, sequence=NON_FINAL)
    rejected = 0
    while chain.median_time_past <= locktime:  # BIP113: final once MTP > nLockTime
        before = snapshot(chain)
        with pytest.raises(BlockRejected) as err:
            chain.submit([raw])
        assert err.value.reason == "bad-txns-nonfinal"
        assert snapshot(chain) == before
        rejected += 1
        chain.mine()
    assert rejected >= 2
    chain.submit([raw])


def test_set_time_jumps_the_clock_for_time_locks(funded):
    chain, (a, _) = funded
    locktime = chain.median_time_past + 30 * 24 * 3600  # a month ahead of the chain
    raw = spend([a], [(OTHER, COIN)], locktime=locktime, sequence=NON_FINAL)
    with pytest.raises(BlockRejected):
        chain.submit([raw])
    chain.mine(1, time=locktime + 1)
    assert chain.tip_time == locktime + 1
    chain.mine(6)  # the median of the last 11 times moves past the jump
    assert chain.median_time_past > locktime
    chain.submit([raw])


def test_block_time_limits(chain):
    chain.mine(11)
    with pytest.raises(ChainError, match="median-time-past"):
        chain.set_time(chain.median_time_past)
    with pytest.raises(ChainError, match="2 hours"):
        chain.mine(1, time=2**32 - 1)
    assert chain.height == 11
    earlier = chain.median_time_past + 1  # before the tip's time, still valid
    chain.set_time(earlier)
    chain.mine()
    assert chain.tip_time == earlier and chain.height == 12
    chain.mine()
    assert chain.tip_time == earlier + 600


def test_default_block_times_stay_inside_the_kernels_clock_limit(chain):
    chain.set_time(int(time.time()))
    chain.mine(30)  # 30 blocks 10 minutes apart would end 5 hours ahead of the wall clock
    assert chain.height == 30
    assert chain.tip_time <= time.time() + 2 * 3600

def test_csv_relative_height_lock(funded):
    chain, (a, b) = funded
    confirmed_at = chain.height  # the funding block
    relative = 5  # BIP68: spendable in a block 5 blocks after the coin's
    raw = spend([a], [(OTHER, COIN)], sequence=relative)
    while chain.height + 1 < confirmed_at + relative:
        before = snapshot(chain)
        with pytest.raises(BlockRejected) as err:
            chain.submit([raw])
        assert err.value.reason == "bad-txns-nonfinal"
        assert snapshot(chain) == before
        chain.mine()
    chain.submit([raw])
    # BIP68 applies to version 2+ only: a version 1 transaction ignores the same sequence
    fresh = spend([b], [(OTHER, COIN)], sequence=relative + 100, version=1)
    chain.submit([fresh])


def test_csv_relative_time_lock(funded):
    chain, (a, _) = funded
    units = 4  # 4 * 512 seconds
    raw = spend([a], [(OTHER, COIN)], sequence=(1 << 22) | units)
    with pytest.raises(BlockRejected) as err:
        chain.submit([raw])
    assert err.value.reason == "bad-txns-nonfinal"
    chain.mine(8)  # 8 * 600 s moves the median time well past 2048 s
    chain.submit([raw])


# -- persistence and lifecycle ---------------------------------------------------------------

def test_persisted_chain_reopens_with_the_same_state(tmp_path):
    datadir = tmp_path / "chain"
    with RegtestChain(datadir=datadir) as chain:
        a, b = chain.fund(OTHER, [COIN, 2 * COIN])
        raw = spend([a], [(NEVER, COIN)])
        chain.submit([raw])
        with pytest.raises(BlockRejected):  # a rejected block stays out of the reopened chain
            chain.submit([raw])
        state = snapshot(chain)
        own = chain.utxos(ANYONE_CAN_SPEND_SCRIPT_PUBKEY)
    assert os.listdir(datadir)
    with RegtestChain(datadir=datadir) as chain:
        assert snapshot(chain) == state
        assert chain.utxos(ANYONE_CAN_SPEND_SCRIPT_PUBKEY) == own
        assert chain.get_tx(txid(raw)) == raw
        # the reopened chain keeps working: its wallet, the index and the kernel agree
        chain.fund(OTHER, [3 * COIN])
        chain.submit([spend([b], [(OTHER, 2 * COIN)])])
        height, tip = chain.height, chain.tip
    with RegtestChain(datadir=datadir) as chain:
        assert (chain.height, chain.tip) == (height, tip)
        assert chain.balance(OTHER) == 5 * COIN


def test_a_datadir_is_used_by_one_chain_at_a_time(tmp_path):
    with RegtestChain(datadir=tmp_path):
        with pytest.raises(ChainError):
            RegtestChain(datadir=tmp_path)


def test_close_removes_the_temporary_datadir():
    chain = RegtestChain()
    chain.mine(2)
    datadir = chain.datadir
    assert datadir.exists()
    chain.close()
    assert not datadir.exists()
    assert chain.closed
    with pytest.raises(ChainError, match="closed"):
        chain.mine()
    chain.close()  # closing twice is harmless


def test_only_regtest_is_supported():
    with pytest.raises(NetworkMismatch):
        RegtestChain(network="mainnet")


def test_kernel_is_the_real_libbitcoinkernel():
    assert hasattr(pbk, "ChainstateManager")


def test_persisted_chain_survives_a_crash(tmp_path):
    """A process that dies without close() loses nothing: the kernel reindexes its block files."""
    datadir = tmp_path / "chain"
    script = (
        "import os, sys\n"
        "from msigvault.regtest import RegtestChain\n"
        f"chain = RegtestChain(datadir={str(datadir)!r})\n"
        f"chain.fund({OTHER!r}, [12345])\n"
        "print(chain.height, chain.tip)\n"
        "sys.stdout.flush()\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    height, tip = done.stdout.split()
    with RegtestChain(datadir=datadir) as chain:
        assert (chain.height, chain.tip) == (int(height), tip)
        assert [u.amount for u in chain.utxos(OTHER)] == [12345]
        chain.mine()
