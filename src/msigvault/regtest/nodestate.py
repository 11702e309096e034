"""What the local regtest node knows: the chain, an address index, a mempool and watch-only wallets.

Everything here runs under one lock (:attr:`NodeState.lock`); the HTTP front ends
(:mod:`msigvault.regtest.node`) only translate requests into calls on this object.

The mempool applies Bitcoin Core's policy checks that msigvault implements
(:mod:`msigvault.standardness`, finality, fees, coinbase maturity, BIP68) and has every input's
script verified by libbitcoinkernel; a mined block is still validated in full by the kernel.
Reject reasons use Core's words (``min relay fee not met``, ``missing-inputs``, ...).

A transaction that spends a coin a mempool transaction already spends is a **replacement**
(BIP125 as Bitcoin Core 28+ applies it, full RBF by default: no signaling needed; with
``full_rbf=False`` every directly conflicting transaction must signal, else
``txn-mempool-conflict``). It must pay a higher fee rate than each transaction it directly
conflicts with, at least their fees and those of all their descendants, plus its own relay at
the incremental relay fee (1 sat/vB) (``insufficient fee``); evict at most 100 transactions
(``too many potential replacements``); add no unconfirmed input the originals did not have
(``replacement-adds-unconfirmed``); and not spend an output of a transaction it replaces
(``bad-txns-spends-conflicting-tx``). Accepted, it evicts the conflicts and their descendants.
"""

from __future__ import annotations

import math
import re
import threading
import time as _time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

from ..errors import MsigvaultError
from ..standardness import MAX_STANDARD_TX_WEIGHT, MIN_RELAY_FEE_RATE, is_dust, output_kind
from .blocks import COINBASE_MATURITY, ParsedTx, parse_block, parse_tx
from .chain import MAX_MONEY, BlockRejected, RegtestChain
from .shapes import Place, sizes

MAX_SCRIPT_SIG_SIZE = 1650
MIN_STANDARD_TX_NONWITNESS_SIZE = 65
DEFAULT_MAX_FEE_RATE = 10_000.0  # sat/vB: Core's maxfeerate default of 0.10 BTC/kvB
SEQUENCE_DISABLE_FLAG = 1 << 31
SEQUENCE_TYPE_FLAG = 1 << 22
SEQUENCE_MASK = 0xFFFF
LOCKTIME_THRESHOLD = 500_000_000
INCREMENTAL_RELAY_FEE_RATE = 1.0  # sat/vB: Core's -incrementalrelayfee default (0.00001 BTC/kvB)
MAX_REPLACEMENT_CANDIDATES = 100  # Core's MAX_REPLACEMENT_CANDIDATES
MAX_BIP125_RBF_SEQUENCE = 0xFFFFFFFD


class Reject(MsigvaultError):
    """The mempool refused a transaction. ``reason`` is Core's reject reason, ``kind`` one of
    ``decode``, ``missing``, ``known``, ``rejected``, ``maxfee``."""

    code = "regtest.tx-rejected"

    def __init__(self, reason: str, debug: str = "", kind: str = "rejected"):
        self.reason = reason
        self.debug = debug
        self.kind = kind
        super().__init__(f"{reason}, {debug}" if debug else reason)

    @property
    def text(self) -> str:
        """Core's ``TxValidationState::ToString()``: reason, then the debug message if any."""
        return str(self)


@dataclass(frozen=True)
class Output:
    amount: int
    script: bytes


@dataclass
class TxRecord:
    """A transaction the node knows, confirmed (``place``) or in the mempool (``place`` None)."""

    ptx: ParsedTx
    place: Optional[Place]
    fee: Optional[int]  # None for a coinbase
    position: int = 0  # index in its block
    time: int = 0  # when the mempool took it


@dataclass
class Wallet:
    """A watch-only descriptor wallet: scriptPubKey -> (descriptor, index or None, internal)."""

    name: str
    scripts: dict = field(default_factory=dict)
    descriptors: list = field(default_factory=list)


class NodeState:
    """The chain, its address index, the mempool and wallets, behind one lock."""

    def __init__(self, chain: RegtestChain, *, fee_estimate: Optional[float] = None,
                 max_fee_rate: float = DEFAULT_MAX_FEE_RATE, full_rbf: bool = True):
        self.chain = chain
        self.full_rbf = full_rbf  # False: only BIP125-signaling transactions can be replaced
        self.network = chain.network
        self.lock = threading.RLock()
        self.fee_estimate = fee_estimate  # sat/vB for every target; None: from recent blocks
        self.max_fee_rate = max_fee_rate
        self.txindex = True  # False: getrawtransaction finds confirmed transactions only with a block hash
        self.txs: dict[str, TxRecord] = {}
        self.outputs: dict[str, list[Output]] = {}  # txid -> its outputs
        self.spender: dict[tuple[str, int], str] = {}  # confirmed spends
        self.by_script: dict[bytes, list[str]] = {}  # script -> txids touching it, in order
        self.mempool: "OrderedDict[str, TxRecord]" = OrderedDict()
        self.mempool_spender: dict[tuple[str, int], str] = {}
        self.wallets: dict[str, Wallet] = {}
        self.indexed_height = -1
        self.block_txids: list[list[str]] = []
        self.heights: dict[str, int] = {}  # block hash -> height
        self._sync()

    # -- the index ---------------------------------------------------------------------------

    def sync(self) -> None:
        """Index blocks mined on the chain directly (``chain.fund``, ``chain.mine``); drop
        mempool transactions a block confirmed or conflicted."""
        with self.lock:
            if self.indexed_height == self.chain.height:
                return
            self._sync()
            gone = [txid for txid, rec in self.mempool.items()
                    if txid in self.txs or any((i.txid.hex(), i.vout) in self.spender for i in rec.ptx.tx.vin)]
            confirmed = [t for t in gone if t in self.txs]
            for txid in confirmed:
                self.remove_from_mempool(txid)
            for txid in self.descendants([t for t in gone if t not in self.txs]):
                self.remove_from_mempool(txid)

    def _sync(self) -> None:
        """Index every block of the chain not indexed yet."""
        for height in range(self.indexed_height + 1, self.chain.height + 1):
            _header, txs = parse_block(self.chain.block_raw(height))
            place = Place(height, self.chain.block_hash(height), self.chain.block_time(height))
            self.heights[place.block_hash] = height
            ids = []
            for pos, ptx in enumerate(txs):
                self._index_tx(ptx, place, pos)
                ids.append(ptx.txid)
            self.block_txids.append(ids)
            self.indexed_height = height

    def _index_tx(self, ptx: ParsedTx, place: Place, pos: int) -> None:
        fee = None if ptx.is_coinbase else self._fee(ptx)
        self.txs[ptx.txid] = TxRecord(ptx, place, fee, pos)
        self.outputs[ptx.txid] = [Output(o.value, o.script_pubkey.data) for o in ptx.tx.vout]
        touched = []
        if not ptx.is_coinbase:
            for inp in ptx.tx.vin:
                key = (inp.txid.hex(), inp.vout)
                self.spender[key] = ptx.txid
                touched.append(self.outputs[key[0]][key[1]].script)
        touched += [o.script_pubkey.data for o in ptx.tx.vout]
        for script in dict.fromkeys(touched):
            self.by_script.setdefault(script, []).append(ptx.txid)

    def _fee(self, ptx: ParsedTx) -> int:
        value_in = sum(self.prevout(i.txid.hex(), i.vout).amount for i in ptx.tx.vin)
        return value_in - sum(o.value for o in ptx.tx.vout)

    def prevout(self, txid: str, vout: int) -> Output:
        return self.outputs[txid][vout]

    def prevouts(self, ptx: ParsedTx) -> list:
        if ptx.is_coinbase:
            return [None]
        return [(o.amount, o.script) for o in
                (self.prevout(i.txid.hex(), i.vout) for i in ptx.tx.vin)]

    # -- queries ---------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.chain.height

    def tx(self, txid: str) -> Optional[TxRecord]:
        return self.mempool.get(txid) or self.txs.get(txid)

    def history(self, script: bytes) -> list[TxRecord]:
        """Transactions touching ``script``: confirmed (chain order) then mempool (arrival order)."""
        confirmed = [self.txs[t] for t in self.by_script.get(script, [])]
        pending = [r for r in self.mempool.values() if script in _scripts_of(self, r.ptx)]
        return confirmed + pending

    def unspent(self, script: bytes, *, include_mempool: bool = True) -> list[tuple[str, int, Output, Optional[Place]]]:
        """(txid, vout, output, place) of unspent outputs paying ``script``."""
        out = []
        for rec in self.history(script):
            if rec.place is None and not include_mempool:
                continue
            for n, o in enumerate(self.outputs_of(rec)):
                key = (rec.ptx.txid, n)
                if o.script != script or key in self.spender:
                    continue
                if include_mempool and key in self.mempool_spender:
                    continue
                if rec.place is not None and _unspendable(o.script):
                    continue
                out.append((rec.ptx.txid, n, o, rec.place))
        return out

    def outputs_of(self, rec: TxRecord) -> list[Output]:
        return self.outputs.get(rec.ptx.txid) or [Output(o.value, o.script_pubkey.data)
                                                  for o in rec.ptx.tx.vout]

    def coin(self, txid: str, vout: int, *, mempool_spent: bool = False
             ) -> Optional[tuple[Output, Optional[int], bool]]:
        """An unspent output (confirmed, or created by a mempool tx) not spent in the mempool
        (``mempool_spent``: or spent there): (output, height or None, is_coinbase)."""
        key = (txid, vout)
        if key in self.spender or (key in self.mempool_spender and not mempool_spent):
            return None
        rec = self.tx(txid)
        if rec is None or vout >= len(rec.ptx.tx.vout):
            return None
        out = self.outputs_of(rec)[vout]
        if _unspendable(out.script):
            return None
        return out, (rec.place.height if rec.place else None), rec.ptx.is_coinbase

    # -- the mempool -------------------------------------------------------------------------

    def accept(self, raw: bytes, *, test_only: bool = False,
               max_fee_rate: Optional[float] = None) -> TxRecord:
        """Check ``raw`` against policy and consensus; add it to the mempool unless ``test_only``.

        Returns the record (with fee); raises :class:`Reject` with Core's reason.
        """
        with self.lock:
            try:
                ptx = parse_tx(bytes(raw))
            except Exception:  # noqa: BLE001  (any decode failure)
                raise Reject("TX decode failed", kind="decode") from None
            if ptx.txid in self.mempool:
                raise Reject("txn-already-in-mempool", kind="known")
            _check_transaction(ptx)
            _check_standard(ptx)
            self._check_final(ptx)
            spent, conflicts = self._check_inputs(ptx)
            fee = sum(o.amount for o, _h, _c in spent) - sum(o.value for o in ptx.tx.vout)
            if fee < 0:
                raise Reject("bad-txns-in-belowout",
                             f"value in ({_money(fee + sum(o.value for o in ptx.tx.vout))}) < "
                             f"value out ({_money(sum(o.value for o in ptx.tx.vout))})")
            self._check_sequence_locks(ptx, spent)
            _size, vsize, _weight = sizes(ptx)
            min_fee = int(vsize * MIN_RELAY_FEE_RATE)
            if fee < min_fee:
                raise Reject("min relay fee not met", f"{fee} < {min_fee}")
            evicted = self._replacement_checks(ptx, fee, vsize, conflicts) if conflicts else []
            _verify_scripts(ptx, [o for o, _h, _c in spent])
            limit = self.max_fee_rate if max_fee_rate is None else max_fee_rate
            if limit and fee / vsize > limit:
                raise Reject("max-fee-exceeded", kind="maxfee")
            rec = TxRecord(ptx, None, fee, time=int(_time.time()))
            if not test_only:
                for txid in evicted:
                    self.remove_from_mempool(txid)
                self.mempool[ptx.txid] = rec
                self.outputs[ptx.txid] = [Output(o.value, o.script_pubkey.data) for o in ptx.tx.vout]
                for inp in ptx.tx.vin:
                    self.mempool_spender[(inp.txid.hex(), inp.vout)] = ptx.txid
            return rec

    def _check_inputs(self, ptx: ParsedTx) -> "tuple[list, list[str]]":
        """The coins ``ptx`` spends, and the mempool transactions that spend any of them already."""
        spent = []
        conflicts: "dict[str, None]" = {}
        for inp in ptx.tx.vin:
            key = (inp.txid.hex(), inp.vout)
            if key in self.mempool_spender:
                conflicts[self.mempool_spender[key]] = None
            coin = self.coin(*key, mempool_spent=True)
            if coin is None:
                if ptx.txid in self.txs and any(
                        (ptx.txid, n) not in self.spender for n in range(len(ptx.tx.vout))):
                    raise Reject("txn-already-known", kind="known")
                raise Reject("missing-inputs", kind="missing")
            out, height, coinbase = coin
            if coinbase and height is not None:
                depth = self.height + 1 - height
                if depth < COINBASE_MATURITY:
                    raise Reject("bad-txns-premature-spend-of-coinbase",
                                 f"tried to spend coinbase at depth {depth}")
            spent.append(coin)
        return spent, list(conflicts)

    # -- replacement (BIP125, Core's policy/rbf.cpp) ------------------------------------------

    def descendants(self, txids) -> "list[str]":
        """``txids`` and every mempool transaction spending their outputs, parents first."""
        out: "dict[str, None]" = {}
        todo = list(txids)
        while todo:
            txid = todo.pop(0)
            if txid in out or txid not in self.mempool:
                continue
            out[txid] = None
            rec = self.mempool[txid]
            for n in range(len(rec.ptx.tx.vout)):
                child = self.mempool_spender.get((txid, n))
                if child is not None:
                    todo.append(child)
        return list(out)

    def ancestors(self, ptx: ParsedTx) -> "list[str]":
        """The mempool transactions ``ptx`` spends from, directly or through others."""
        out: "dict[str, None]" = {}
        todo = [i.txid.hex() for i in ptx.tx.vin]
        while todo:
            t = todo.pop()
            if t in out or t not in self.mempool:
                continue
            out[t] = None
            todo += [i.txid.hex() for i in self.mempool[t].ptx.tx.vin]
        return list(out)

    def replaceable(self, txid: str) -> bool:
        """A mempool transaction that signals BIP125, or has an unconfirmed ancestor that does."""
        seen: "set[str]" = set()
        todo = [txid]
        while todo:
            t = todo.pop()
            if t in seen or t not in self.mempool:
                continue
            seen.add(t)
            ptx = self.mempool[t].ptx
            if signals_rbf(ptx):
                return True
            todo += [i.txid.hex() for i in ptx.tx.vin]
        return False

    def _replacement_checks(self, ptx: ParsedTx, fee: int, vsize: int, conflicts: "list[str]") -> "list[str]":
        """The transactions ``ptx`` evicts (its conflicts and their descendants); Reject unless it may."""
        txid = ptx.txid
        for ancestor in self.ancestors(ptx):
            if ancestor in conflicts:
                raise Reject("bad-txns-spends-conflicting-tx", f"{txid} spends conflicting transaction {ancestor}")
        if not self.full_rbf:
            for c in conflicts:
                if not signals_rbf(self.mempool[c].ptx):
                    raise Reject("txn-mempool-conflict")
        new_rate = _fee_rate_per_kvb(fee, vsize)
        for c in conflicts:
            old = self.mempool[c]
            old_rate = _fee_rate_per_kvb(old.fee or 0, sizes(old.ptx)[1])
            if new_rate <= old_rate:
                raise Reject("insufficient fee", f"rejecting replacement {txid}; new feerate {_kvb(new_rate)} <= "
                                                 f"old feerate {_kvb(old_rate)}")
        evicted = self.descendants(conflicts)
        if len(evicted) > MAX_REPLACEMENT_CANDIDATES:
            raise Reject("too many potential replacements",
                         f"rejecting replacement {txid}; too many potential replacements "
                         f"({len(evicted)} > {MAX_REPLACEMENT_CANDIDATES})")
        parents = {i.txid.hex() for c in conflicts for i in self.mempool[c].ptx.tx.vin}
        for n, inp in enumerate(ptx.tx.vin):
            parent = inp.txid.hex()
            if parent in self.mempool and parent not in parents:
                raise Reject("replacement-adds-unconfirmed", f"replacement {txid} adds unconfirmed input, idx {n}")
        original = sum(self.mempool[t].fee or 0 for t in evicted)
        if fee < original:
            raise Reject("insufficient fee", f"rejecting replacement {txid}, less fees than conflicting txs; "
                                             f"{_money(fee)} < {_money(original)}")
        relay = math.ceil(vsize * INCREMENTAL_RELAY_FEE_RATE)
        if fee - original < relay:
            raise Reject("insufficient fee", f"rejecting replacement {txid}, not enough additional fees to relay; "
                                             f"{_money(fee - original)} < {_money(relay)}")
        return evicted

    def _check_final(self, ptx: ParsedTx) -> None:
        tx = ptx.tx
        if tx.locktime == 0 or all(i.sequence == 0xFFFFFFFF for i in tx.vin):
            return
        height = self.height + 1
        cutoff = height if tx.locktime < LOCKTIME_THRESHOLD else self.chain.median_time_past
        if tx.locktime >= cutoff:
            raise Reject("non-final")

    def _check_sequence_locks(self, ptx: ParsedTx, spent: list) -> None:
        if ptx.tx.version < 2:
            return
        next_height = self.height + 1
        for inp, (_out, height, _cb) in zip(ptx.tx.vin, spent):
            seq = inp.sequence
            if seq & SEQUENCE_DISABLE_FLAG:
                continue
            coin_height = next_height if height is None else height
            value = seq & SEQUENCE_MASK
            if seq & SEQUENCE_TYPE_FLAG:
                base = self._mtp_before(coin_height)
                if base + (value << 9) - 1 >= self.chain.median_time_past:
                    raise Reject("non-BIP68-final")
            elif coin_height + value - 1 >= next_height:
                raise Reject("non-BIP68-final")

    def _mtp_before(self, height: int) -> int:
        times = [self.chain.block_time(h) for h in range(max(0, height - 11), height)]
        times.sort()
        return times[len(times) // 2] if times else 0

    def remove_from_mempool(self, txid: str) -> None:
        rec = self.mempool.pop(txid, None)
        if rec is None:
            return
        for inp in rec.ptx.tx.vin:
            self.mempool_spender.pop((inp.txid.hex(), inp.vout), None)
        if txid not in self.txs:
            self.outputs.pop(txid, None)

    # -- mining ----------------------------------------------------------------------------

    def mine(self, n: int, to: bytes) -> list[str]:
        """Mine ``n`` blocks paying ``to``; the first takes the whole mempool."""
        with self.lock:
            hashes = []
            for i in range(n):
                pending = [r.ptx.raw for r in self.mempool.values()] if i == 0 else []
                try:
                    hashes.append(self.chain.submit(pending, to=to))
                except BlockRejected:
                    if not pending:
                        raise
                    hashes.append(self.chain.submit([], to=to))
                for txid in list(self.mempool):
                    self.remove_from_mempool(txid)
                self._sync()
            return hashes

    # -- fees --------------------------------------------------------------------------------

    def fee_rate(self) -> Optional[float]:
        """sat/vB the node estimates for any target: the fixed ``fee_estimate`` if one was
        given, else the median fee rate of the last 6 blocks' transactions, else None."""
        if self.fee_estimate is not None:
            return self.fee_estimate
        rates = []
        for ids in self.block_txids[-6:]:
            for txid in ids[1:]:
                rec = self.txs[txid]
                rates.append(rec.fee / sizes(rec.ptx)[1])
        if not rates:
            return None
        rates.sort()
        return max(MIN_RELAY_FEE_RATE, rates[len(rates) // 2])


def _scripts_of(state: NodeState, ptx: ParsedTx) -> set:
    scripts = {o.script_pubkey.data for o in ptx.tx.vout}
    if not ptx.is_coinbase:
        for inp in ptx.tx.vin:
            rec = state.tx(inp.txid.hex())
            if rec is not None:
                scripts.add(state.outputs_of(rec)[inp.vout].script)
    return scripts


def signals_rbf(ptx: ParsedTx) -> bool:
    """BIP125 opt-in: some input's sequence is at most 0xFFFFFFFD."""
    return any(i.sequence <= MAX_BIP125_RBF_SEQUENCE for i in ptx.tx.vin)


def _fee_rate_per_kvb(fee: int, vsize: int) -> int:
    """Core's CFeeRate(fee, vsize): sat per 1,000 vbytes, rounded down."""
    return fee * 1000 // vsize if vsize else 0


def _kvb(rate: int) -> str:
    """CFeeRate::ToString(): ``0.00001000 BTC/kvB``."""
    return f"{rate // 100_000_000}.{rate % 100_000_000:08d} BTC/kvB"


def _unspendable(script: bytes) -> bool:
    return (len(script) > 0 and script[0] == 0x6A) or len(script) > 10_000


def _money(sats: int) -> str:
    """Core's FormatMoney: at least 2 decimals, trailing zeros dropped."""
    sign = "-" if sats < 0 else ""
    whole, frac = divmod(abs(sats), 100_000_000)
    text = f"{frac:08d}".rstrip("0")
    return f"{sign}{whole}.{text.ljust(2, '0')}"


def _check_transaction(ptx: ParsedTx) -> None:
    """Core's CheckTransaction (context-free) and the mempool's coinbase rule."""
    tx = ptx.tx
    if not tx.vin:
        raise Reject("bad-txns-vin-empty")
    if not tx.vout:
        raise Reject("bad-txns-vout-empty")
    total = 0
    for o in tx.vout:
        if o.value < 0:
            raise Reject("bad-txns-vout-negative")
        if o.value > MAX_MONEY:
            raise Reject("bad-txns-vout-toolarge")
        total += o.value
        if total > MAX_MONEY:
            raise Reject("bad-txns-txouttotal-toolarge")
    outpoints = [(i.txid, i.vout) for i in tx.vin]
    if len(set(outpoints)) != len(outpoints):
        raise Reject("bad-txns-inputs-duplicate")
    if ptx.is_coinbase:
        raise Reject("coinbase")
    if any(i.txid == bytes(32) and i.vout == 0xFFFFFFFF for i in tx.vin):
        raise Reject("bad-txns-prevout-null")


_PUSH_ONLY_MAX_OP = 0x60


def _push_only(script: bytes) -> bool:
    i = 0
    while i < len(script):
        op = script[i]
        i += 1
        if op > _PUSH_ONLY_MAX_OP:
            return False
        if 0x01 <= op <= 0x4B:
            i += op
        elif op in (0x4C, 0x4D, 0x4E):
            width = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
            i += width + int.from_bytes(script[i:i + width], "little")
    return i == len(script)


def _check_standard(ptx: ParsedTx) -> None:
    """Core's IsStandardTx, with msigvault's output rules."""
    tx = ptx.tx
    if not 1 <= tx.version <= 3:
        raise Reject("version")
    size, _vsize, weight = sizes(ptx)
    if weight > MAX_STANDARD_TX_WEIGHT:
        raise Reject("tx-size")
    for inp in tx.vin:
        script_sig = inp.script_sig.data
        if len(script_sig) > MAX_SCRIPT_SIG_SIZE:
            raise Reject("scriptsig-size")
        if not _push_only(script_sig):
            raise Reject("scriptsig-not-pushonly")
    data_outputs = 0
    for o in tx.vout:
        script = o.script_pubkey.data
        kind = output_kind(script)
        if kind == "nonstandard" or (kind == "op_return" and len(script) > 83):
            raise Reject("scriptpubkey")
        if kind == "op_return":
            data_outputs += 1
        elif is_dust(o.value, script):
            raise Reject("dust")
    if data_outputs > 1:
        raise Reject("multi-op-return")
    stripped = (weight - size) // 3
    if stripped < MIN_STANDARD_TX_NONWITNESS_SIZE:
        raise Reject("tx-size-small")


def _verify_scripts(ptx: ParsedTx, spent: list) -> None:
    """Every input's script, verified by libbitcoinkernel with all consensus flags."""
    import pbk
    from pbk.script import PrecomputedTransactionData

    ktx = pbk.Transaction(ptx.raw)
    kspent = [pbk.TransactionOutput(pbk.ScriptPubkey(o.script), o.amount) for o in spent]
    pre = PrecomputedTransactionData(ktx, kspent)
    flags = pbk.ScriptVerificationFlags.ALL
    for i, o in enumerate(spent):
        try:
            ok = pbk.ScriptPubkey(o.script).verify(o.amount, ktx, pre, i, flags)
        except pbk.ScriptVerifyException as e:
            raise Reject("mandatory-script-verify-flag-failed",
                         f"input {i}: libbitcoinkernel could not verify ({e})") from None
        if not ok:
            raise Reject(f"mandatory-script-verify-flag-failed (input {i}: "
                         "libbitcoinkernel's script interpreter returned false)")


HEX = re.compile(r"^[0-9a-fA-F]*$")
