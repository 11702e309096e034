"""An in-process regtest chain whose every block is validated by Bitcoin Core's libbitcoinkernel.

:class:`RegtestChain` builds blocks itself (see :mod:`msigvault.regtest.blocks`) and hands each one
to the kernel's ``ProcessBlock``. Whether a block is accepted is decided only by the kernel: the
chain compares the kernel's active tip with the block it just built. The UTXO index kept here is
updated only after the kernel has connected a block, so a rejected block changes nothing.

Why a UTXO index of our own: libbitcoinkernel exposes no coins-view look-up, so the chain keeps
the unspent outputs of the blocks the kernel connected. A chain reopened from a data directory
rebuilds that index by reading every block of the kernel's active chain back from disk.

Why a state file: the kernel writes its block index and UTXO set to disk only when it is closed.
``msigvault-regtest.json`` beside the kernel's data says whether the last session closed cleanly;
if it did not (a crash, a killed test run) the kernel reindexes its block files on reopening.

Why the log: the kernel's ``BlockValidationState`` tells valid/invalid and a coarse result code,
but not Core's reject reason ("bad-txns-inputs-missingorspent", ...). Core writes that reason to
its log, so the chain listens to the kernel's log while it processes a block and quotes the line.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time as _time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

import pbk
from embit.networks import NETWORKS
from embit.script import Script, Witness, address_to_scriptpubkey, p2wsh
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from ..errors import ChainError, InvalidAddress, NetworkMismatch
from ..fileio import write_atomic
from ..network import Network
from ..types import Utxo
from .blocks import (
    COINBASE_MATURITY,
    BuiltBlock,
    ParsedTx,
    block_subsidy,
    build_block,
    header_time,
    parse_block,
    parse_tx,
)

ANYONE_CAN_SPEND_WITNESS_SCRIPT = b"\x51"  # OP_TRUE
# P2WSH(OP_TRUE): spendable by anyone with the witness [OP_TRUE]; the chain's own wallet
ANYONE_CAN_SPEND_SCRIPT_PUBKEY = p2wsh(Script(ANYONE_CAN_SPEND_WITNESS_SCRIPT)).data

BLOCK_SPACING = 600  # seconds between the default timestamps of consecutive blocks
MEDIAN_TIME_SPAN = 11  # BIP113: median of the last 11 block times
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60  # the kernel rejects blocks 2 h ahead of its wall clock
CLOCK_MARGIN = 60  # default block times stay this far inside that limit
MAX_MONEY = 21_000_000 * 100_000_000
MAX_SCRIPT_SIZE = 10_000
OP_RETURN = 0x6A
SEQUENCE_FINAL = 0xFFFFFFFF

STATE_FILE = "msigvault-regtest.json"  # {"open": bool, "height", "tip"} beside the kernel's data
LOCK_FILE = ".msigvault-regtest.lock"  # flock'ed while a RegtestChain has the directory open

ScriptLike = Union[str, bytes, bytearray, Script]
TxLike = Union[bytes, bytearray, str, Transaction]


class BlockRejected(ChainError):
    """libbitcoinkernel refused a block; the chain is unchanged.

    ``reason`` is Core's reject reason (e.g. ``bad-txns-inputs-missingorspent``), ``detail`` the
    debug text Core logged with it, ``result`` the kernel's ``BlockValidationResult`` name.
    """

    code = "chain.block-rejected"

    def __init__(self, reason: str, detail: str, result: str, block_hash: str):
        self.reason = reason
        self.detail = detail
        self.result = result
        self.block_hash = block_hash
        text = f"{reason}, {detail}" if detail else reason
        super().__init__(
            f"libbitcoinkernel rejected block {block_hash}: {text} "
            f"(validation result {result}); the chain is unchanged"
        )


@dataclass(frozen=True)
class _Coin:
    amount: int
    script_pubkey: bytes
    height: int
    coinbase: bool


class _KernelLog:
    """The process-wide connection to libbitcoinkernel's log; keeps lines only while recording.

    The kernel's log is global, so one connection serves every chain in the process.
    """

    def __init__(self) -> None:
        self._connection: Optional[pbk.LoggingConnection] = None
        self._lines: Optional[list[str]] = None

    def _on_line(self, line: str) -> None:
        if self._lines is not None:
            self._lines.append(line)

    def connect(self) -> None:
        if self._connection is None:
            self._connection = pbk.LoggingConnection(self._on_line)

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        lines: list[str] = []
        self._lines = lines
        try:
            yield lines
        finally:
            self._lines = None


_KERNEL_LOG = _KernelLog()

# Where Core states a block's reject reason, most specific first. The captured group is Core's
# BlockValidationState::ToString(): "reason" or "reason, debug message".
_REASON_PATTERNS = [
    re.compile(r"ConnectBlock [0-9a-f]{64} failed, (.+)$"),
    re.compile(r"AcceptBlock FAILED \((.+)\)$"),
    re.compile(r"CheckBlock FAILED \((.+)\)$"),
    re.compile(r"Block validation error: (.+)$"),
]


def reason_from_log(lines: Iterable[str]) -> Optional[str]:
    """Core's reject reason (with its debug text) from kernel log lines, if any states one."""
    lines = [line.strip() for line in lines]
    for pattern in _REASON_PATTERNS:
        for line in lines:
            match = pattern.search(line)
            if match:
                return match.group(1)
    return None


def _split_reason(text: str) -> tuple[str, str]:
    reason, _, detail = text.partition(", ")
    return reason.strip(), detail.strip()


def _is_unspendable(script_pubkey: bytes) -> bool:
    """Outputs Core never adds to its UTXO set."""
    return (len(script_pubkey) > 0 and script_pubkey[0] == OP_RETURN) or (
        len(script_pubkey) > MAX_SCRIPT_SIZE
    )


def spend_anyone_can_spend(coins: Sequence[Utxo], outputs: Sequence[tuple[bytes, int]], *,
                           version: int = 2, locktime: int = 0,
                           sequence: int = SEQUENCE_FINAL) -> bytes:
    """Serialized transaction spending P2WSH(OP_TRUE) ``coins`` to ``(script_pubkey, sats)``.

    Every input gets ``sequence`` and the witness ``[OP_TRUE]``. Use ``sequence`` below
    0xFFFFFFFF to make ``locktime`` count, and a BIP68 value (with ``version >= 2``) for a
    relative lock.
    """
    vin = [TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=sequence,
                            witness=Witness([ANYONE_CAN_SPEND_WITNESS_SCRIPT]))
           for c in coins]
    vout = [TransactionOutput(amount, Script(bytes(spk))) for spk, amount in outputs]
    return Transaction(version=version, vin=vin, vout=vout, locktime=locktime).serialize()


class RegtestChain:
    """A regtest chain in this process, validated block by block by libbitcoinkernel.

    ``RegtestChain()`` lives in a temporary directory removed by :meth:`close`;
    ``RegtestChain(datadir=path)`` keeps the kernel's block files and databases in ``path``, and
    a later ``RegtestChain(datadir=path)`` continues the same chain. Use it as a context manager.
    """

    def __init__(self, datadir: "str | os.PathLike | None" = None,
                 network: "Network | str" = Network.REGTEST):
        network = Network.from_name(network)
        if network.name != Network.REGTEST.name:
            raise NetworkMismatch(
                f"RegtestChain can only run regtest (it mines its own blocks), not {network.name}"
            )
        self.network = network
        self._embit_network = NETWORKS[network.bip32_name]
        self._tempdir: Optional[tempfile.TemporaryDirectory] = None
        self._persisted = datadir is not None
        if datadir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="msigvault-regtest-")
            self.datadir = Path(self._tempdir.name)
        else:
            self.datadir = Path(datadir).absolute()
        self._coins: dict[tuple[str, int], _Coin] = {}  # (txid, vout) -> unspent output
        self._txs: dict[str, bytes] = {}  # txid -> serialized transaction, every block
        self._times: list[int] = []  # block timestamps by height
        self._pending_time: Optional[int] = None  # set_time() for the next block
        self._extra_nonce = 0
        self._last_checked: Optional[tuple[bytes, str]] = None  # (block hash, result name)
        self._context = None
        self._chainman = None
        self._lock_fd: Optional[int] = None
        try:
            if self._persisted:
                self._open_persisted()
            else:
                self._open_kernel(in_memory=True)
            self._replay()
        except BaseException:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def _open_kernel(self, in_memory: bool, reindex: bool = False) -> None:
        _KERNEL_LOG.connect()
        callbacks = pbk.ValidationInterfaceCallbacks(block_checked=self._on_block_checked)
        self._context = pbk.make_context(pbk.ChainType.REGTEST, callbacks)
        options = pbk.ChainstateManagerOptions(
            self._context, str(self.datadir), str(self.datadir / "blocks"))
        options.update_block_tree_db_in_memory(in_memory)
        options.update_chainstate_db_in_memory(in_memory)
        if reindex:
            options.set_wipe_dbs(True, True)
        try:
            self._chainman = pbk.ChainstateManager(options)
        except RuntimeError as e:
            raise ChainError(
                f"libbitcoinkernel could not open a chain in {self.datadir} ({e}); is another "
                "RegtestChain or bitcoind using it? Close that first or choose another directory"
            ) from None
        # pbk 0.1.0a5 documents a bool but returns the C status: 0 means success
        if reindex and self._chainman.import_blocks([]) != 0:
            raise ChainError(f"libbitcoinkernel could not reindex the blocks in {self.datadir}")

    def _open_persisted(self) -> None:
        """Open ``datadir``; if the last session did not close cleanly, reindex its block files.

        The kernel flushes its block index and UTXO set when it is closed. After a crash they
        may lag behind the block files, so the kernel rebuilds both from those files (as
        ``bitcoind -reindex`` would), validating every block again.
        """
        self._lock_datadir()
        state = self._read_state()
        self._write_state({"open": True})
        self._open_kernel(in_memory=False)
        expected = (state.get("height"), state.get("tip"))
        if state.get("open") or (state and expected != (self.height, self.tip)):
            self._close_kernel()
            self._open_kernel(in_memory=False, reindex=True)

    def _lock_datadir(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # no flock on this platform: the kernel's own database locks remain
            return
        fd = os.open(self.datadir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ChainError(
                f"{self.datadir} is in use by another RegtestChain: close that one first"
            ) from None
        self._lock_fd = fd

    def _read_state(self) -> dict:
        try:
            return json.loads((self.datadir / STATE_FILE).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"open": True}  # unreadable: treat like a crash and reindex

    def _write_state(self, state: dict) -> None:
        write_atomic(self.datadir / STATE_FILE, json.dumps(state, sort_keys=True).encode())

    def _on_block_checked(self, _user_data, block: pbk.Block,
                          state: pbk.BlockValidationState) -> None:
        self._last_checked = (bytes(block.block_hash), state.block_validation_result.name)

    def _close_kernel(self) -> None:
        if self._chainman is not None:
            self._chainman.__exit__(None, None, None)  # pbk's way to destroy it now
            self._chainman = None
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None

    def close(self) -> None:
        """Release the kernel (flushing a persisted chain to disk) and remove a temporary datadir."""
        clean_state = None
        if self._chainman is not None and self._persisted:
            clean_state = {"open": False, "height": self.height, "tip": self.tip}
        self._close_kernel()
        if clean_state is not None:
            self._write_state(clean_state)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    @property
    def closed(self) -> bool:
        return self._chainman is None

    def __enter__(self) -> "RegtestChain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<RegtestChain closed>"
        return f"<RegtestChain height={self.height} tip={self.tip}>"

    def _kernel(self) -> pbk.ChainstateManager:
        if self._chainman is None:
            raise ChainError("this RegtestChain is closed: open a new one")
        return self._chainman

    def _kernel_tip(self) -> pbk.BlockTreeEntry:
        chain = self._kernel().get_active_chain()
        return chain.block_tree_entries[chain.height]

    def _replay(self) -> None:
        """Rebuild times, transactions and the UTXO index from the kernel's active chain."""
        chainman = self._kernel()
        chain = chainman.get_active_chain()
        for height in range(chain.height + 1):
            raw = bytes(chainman.blocks[chain.block_tree_entries[height]])
            header, txs = parse_block(raw)
            if height == 0:  # the genesis output is not in Core's UTXO set either
                self._times.append(header_time(header))
            else:
                self._apply(height, header_time(header), txs)

    # -- chain state -----------------------------------------------------------------------

    @property
    def height(self) -> int:
        """Height of the tip (genesis is 0)."""
        return self._kernel().get_active_chain().height

    @property
    def tip(self) -> str:
        """Hash of the tip block, display hex."""
        return str(self._kernel_tip().block_hash)

    @property
    def tip_time(self) -> int:
        """Timestamp of the tip block."""
        return self._times[-1]

    @property
    def median_time_past(self) -> int:
        """BIP113 median of the last 11 block times: what nLockTime and CSV times compare with."""
        return _median_time(self._times)

    # -- time ------------------------------------------------------------------------------

    def set_time(self, unix_ts: int) -> None:
        """Give the next block the timestamp ``unix_ts``; later blocks follow 10 minutes apart.

        It must be after the median-time-past and at most 2 hours ahead of this machine's clock
        (libbitcoinkernel judges block times by the wall clock).
        """
        self._check_block_time(unix_ts)
        self._pending_time = unix_ts

    def _check_block_time(self, unix_ts: int) -> None:
        if not isinstance(unix_ts, int) or isinstance(unix_ts, bool):
            raise ChainError(f"block time must be an integer unix time, not {unix_ts!r}")
        mtp = self.median_time_past
        if unix_ts <= mtp:
            raise ChainError(
                f"block time {unix_ts} is not after the median-time-past {mtp} (Core: "
                "time-too-old): choose a later time"
            )
        latest = int(_time.time()) + MAX_FUTURE_BLOCK_TIME
        if unix_ts > latest:
            raise ChainError(
                f"block time {unix_ts} is more than 2 hours ahead of this machine's clock "
                f"(Core: time-too-new): choose a time up to {latest}"
            )

    def _next_block_time(self) -> int:
        """The pending set_time(), else 10 minutes after the tip.

        Near the kernel's wall-clock limit the step shrinks so that a chain whose clock was set
        to about now can still mine; it never goes below median-time-past + 1.
        """
        if self._pending_time is not None:
            return self._pending_time
        latest = int(_time.time()) + MAX_FUTURE_BLOCK_TIME - CLOCK_MARGIN
        return max(self.median_time_past + 1, min(self.tip_time + BLOCK_SPACING, latest))

    # -- mining ----------------------------------------------------------------------------

    def mine(self, n: int = 1, to: Optional[ScriptLike] = None,
             time: Optional[int] = None) -> list[str]:
        """Mine ``n`` empty blocks paying their coinbase to ``to``; return their hashes.

        ``to`` is an address or a scriptPubKey; by default the chain's own anyone-can-spend
        wallet. ``time`` is the first block's timestamp (see :meth:`set_time`).
        """
        if not isinstance(n, int) or n < 0:
            raise ChainError(f"cannot mine {n!r} blocks: give a count of 0 or more")
        payout = self._script(to) if to is not None else ANYONE_CAN_SPEND_SCRIPT_PUBKEY
        if time is not None:
            self.set_time(time)
        return [self._connect([], payout).hash_hex for _ in range(n)]

    def mine_until(self, height: int, to: Optional[ScriptLike] = None) -> list[str]:
        """Mine empty blocks until the tip is at ``height``; return their hashes."""
        if height < self.height:
            raise ChainError(
                f"the chain is already at height {self.height}, above {height}: "
                "RegtestChain cannot go back; use a new chain"
            )
        return self.mine(height - self.height, to=to)

    def submit(self, txs: Sequence[TxLike], to: Optional[ScriptLike] = None) -> str:
        """Mine ``txs`` (serialized bytes, hex or embit transactions) in one new block.

        Returns the block hash. Raises :class:`BlockRejected` (a ChainError) with Core's reason
        if libbitcoinkernel refuses the block; the chain is then unchanged. ``to`` receives the
        coinbase (default: the chain's own wallet).
        """
        if isinstance(txs, (bytes, bytearray, str, Transaction)):
            raise ChainError("submit() takes a list of transactions: wrap the one in [ ]")
        parsed = [_parse_tx_like(tx, i) for i, tx in enumerate(txs)]
        payout = self._script(to) if to is not None else ANYONE_CAN_SPEND_SCRIPT_PUBKEY
        return self._connect(parsed, payout).hash_hex

    def fund(self, address_or_script: ScriptLike, amounts: Sequence[int]) -> list[Utxo]:
        """Pay each of ``amounts`` (sats) to ``address_or_script`` in one confirmed transaction.

        The money comes from the chain's own mature coinbase outputs; blocks are mined first
        when there are not enough (coinbase outputs mature after 100 blocks).
        """
        script_pubkey = self._script(address_or_script)
        amounts = _check_amounts(amounts)
        total = sum(amounts)
        coins = self._own_coins_for(total)
        outputs = [(script_pubkey, amount) for amount in amounts]
        change = sum(c.amount for c in coins) - total
        if change:
            outputs.append((ANYONE_CAN_SPEND_SCRIPT_PUBKEY, change))
        raw = spend_anyone_can_spend(coins, outputs)
        self.submit([raw])
        txid = parse_tx(raw).txid
        return [Utxo(txid=txid, vout=vout, amount=amount, script_pubkey=script_pubkey,
                     prev_tx=raw) for vout, amount in enumerate(amounts)]

    def _own_coins_for(self, total: int) -> list[Utxo]:
        """Mature anyone-can-spend coins worth at least ``total``, mining blocks until there are."""
        while True:
            picked, value = [], 0
            for utxo in self._spendable_own_coins():
                picked.append(utxo)
                value += utxo.amount
                if value >= total:
                    return picked
            immature = any(c.coinbase and c.script_pubkey == ANYONE_CAN_SPEND_SCRIPT_PUBKEY
                           for c in self._coins.values())
            if block_subsidy(self.height + 1) == 0 and not immature:
                raise ChainError(
                    f"the chain's own wallet holds {value} spendable sats and mining adds no "
                    f"more: it cannot fund {total} sats"
                )
            self.mine(1)

    def _spendable_own_coins(self) -> Iterator[Utxo]:
        spend_height = self.height + 1
        for (txid, vout), coin in self._coins.items():
            if coin.script_pubkey != ANYONE_CAN_SPEND_SCRIPT_PUBKEY or coin.amount == 0:
                continue
            if coin.coinbase and spend_height - coin.height < COINBASE_MATURITY:
                continue
            yield self._utxo(txid, vout, coin)

    def _connect(self, txs: list[ParsedTx], payout: bytes) -> BuiltBlock:
        """Build the next block with ``txs``, have the kernel process it, index it if connected."""
        height = self.height + 1
        block_time = self._next_block_time()
        coinbase_outputs = [(block_subsidy(height) + self._fees(txs), payout)]
        prev_hash = bytes(self._kernel_tip().block_hash)
        while True:
            self._extra_nonce += 1
            block = build_block(prev_hash, height, block_time, txs, coinbase_outputs,
                                self._extra_nonce)
            lines, is_new = self._process(block)
            if bytes(self._kernel_tip().block_hash) == block.hash:
                self._apply(height, block_time, block.txs)
                self._pending_time = None
                return block
            rejection = self._rejection(block, lines)
            # the same bytes were processed before (a chain reopened from disk): new extra nonce
            if not is_new and rejection.reason in ("duplicate-invalid", "duplicate"):
                continue
            raise rejection

    def _process(self, block: BuiltBlock) -> tuple[list[str], bool]:
        """Hand ``block`` to the kernel; return its log lines and whether the block was new."""
        self._last_checked = None
        with _KERNEL_LOG.recording() as lines:
            try:
                is_new = self._kernel().process_block(pbk.Block(block.raw))
            except pbk.ProcessBlockException:
                is_new = False
        return lines, is_new

    def _rejection(self, block: BuiltBlock, lines: list[str]) -> BlockRejected:
        result = "UNSET"
        if self._last_checked and self._last_checked[0] == block.hash:
            result = self._last_checked[1]
        text = reason_from_log(lines)
        if text is None:
            if result == "UNSET":
                text = "duplicate, libbitcoinkernel already knew this block and did not connect it"
            else:
                text = (f"unknown, libbitcoinkernel logged no reason (log: "
                        f"{' | '.join(line.strip() for line in lines) or 'empty'})")
        reason, detail = _split_reason(text)
        return BlockRejected(reason, detail, result, block.hash_hex)

    def _fees(self, txs: list[ParsedTx]) -> int:
        """Fees the coinbase may claim on top of the subsidy.

        0 if an input is unknown or a transaction pays out more than it spends: the kernel will
        refuse such a block anyway, and claiming only the subsidy keeps Core's reason about the
        transaction from being masked by ``bad-cb-amount``.
        """
        created: dict[tuple[str, int], int] = {}
        spent: set[tuple[str, int]] = set()
        fees = 0
        for t in txs:
            value_in = 0
            for inp in t.tx.vin:
                key = (inp.txid.hex(), inp.vout)
                if key in spent:
                    return 0
                if key in created:
                    value_in += created[key]
                elif key in self._coins:
                    value_in += self._coins[key].amount
                else:
                    return 0
                spent.add(key)
            value_out = sum(out.value for out in t.tx.vout)
            if value_out > value_in:
                return 0
            fees += value_in - value_out
            for vout, out in enumerate(t.tx.vout):
                created[(t.txid, vout)] = out.value
        return fees

    def _apply(self, height: int, block_time: int, txs: list[ParsedTx]) -> None:
        """Index a block the kernel connected: spend its inputs, add its outputs."""
        for t in txs:
            if not t.is_coinbase:
                for inp in t.tx.vin:
                    del self._coins[(inp.txid.hex(), inp.vout)]
            for vout, out in enumerate(t.tx.vout):
                script_pubkey = out.script_pubkey.data
                if not _is_unspendable(script_pubkey):
                    self._coins[(t.txid, vout)] = _Coin(out.value, script_pubkey, height,
                                                        t.is_coinbase)
            self._txs[t.txid] = t.raw
        self._times.append(block_time)

    # -- queries ---------------------------------------------------------------------------

    def utxos(self, script_or_address: ScriptLike) -> list[Utxo]:
        """Unspent outputs paying ``script_or_address``, oldest first (immature coinbase too)."""
        script_pubkey = self._script(script_or_address)
        self._kernel()
        return [self._utxo(txid, vout, coin) for (txid, vout), coin in self._coins.items()
                if coin.script_pubkey == script_pubkey]

    def utxos_for_scripts(self, script_pubkeys) -> list[Utxo]:
        """Unspent outputs paying any of ``script_pubkeys`` (a set of bytes), in one pass."""
        wanted = set(script_pubkeys)
        self._kernel()
        return [self._utxo(txid, vout, coin) for (txid, vout), coin in self._coins.items()
                if coin.script_pubkey in wanted]

    def utxo(self, txid: str, vout: int) -> Optional[Utxo]:
        """The unspent output ``txid:vout`` (display hex), or None if it is spent or unknown."""
        self._kernel()
        coin = self._coins.get((txid.lower(), vout))
        return self._utxo(txid.lower(), vout, coin) if coin is not None else None

    def script_pubkeys(self) -> set:
        """Every scriptPubKey that currently has an unspent output."""
        self._kernel()
        return {coin.script_pubkey for coin in self._coins.values()}

    def balance(self, script_or_address: ScriptLike) -> int:
        """Sum of :meth:`utxos` in sats."""
        return sum(u.amount for u in self.utxos(script_or_address))

    def get_tx(self, txid: str) -> Optional[bytes]:
        """The serialized transaction ``txid`` (display hex) if a block of this chain has it."""
        self._kernel()
        return self._txs.get(txid.lower())

    def block_hash(self, height: int) -> str:
        """Hash (display hex) of the active chain's block at ``height``."""
        return str(self._entry(height).block_hash)

    def block_raw(self, height: int) -> bytes:
        """The serialized block at ``height`` of the active chain, read back from the kernel."""
        chainman = self._kernel()
        return bytes(chainman.blocks[self._entry(height)])

    def block_time(self, height: int) -> int:
        """Timestamp of the block at ``height``."""
        self._entry(height)
        return self._times[height]

    def _entry(self, height: int) -> pbk.BlockTreeEntry:
        chain = self._kernel().get_active_chain()
        if isinstance(height, bool) or not isinstance(height, int) or not 0 <= height <= chain.height:
            raise ChainError(f"no block at height {height!r}: the chain's height is {chain.height}")
        return chain.block_tree_entries[height]

    @property
    def wallet_script(self) -> bytes:
        """scriptPubKey of the chain's own anyone-can-spend wallet: P2WSH of OP_TRUE."""
        return ANYONE_CAN_SPEND_SCRIPT_PUBKEY

    @property
    def wallet_address(self) -> str:
        """Address of the chain's own anyone-can-spend wallet."""
        return Script(ANYONE_CAN_SPEND_SCRIPT_PUBKEY).address(self._embit_network)

    def _utxo(self, txid: str, vout: int, coin: _Coin) -> Utxo:
        return Utxo(txid=txid, vout=vout, amount=coin.amount, script_pubkey=coin.script_pubkey,
                    prev_tx=self._txs[txid])

    def _script(self, target: ScriptLike) -> bytes:
        """scriptPubKey bytes for an address of this chain's network or a raw script."""
        if isinstance(target, (bytes, bytearray)):
            return bytes(target)
        if isinstance(target, Script):
            return target.data
        if not isinstance(target, str):
            raise ChainError(f"expected an address or scriptPubKey bytes, not {type(target)}")
        try:
            script = address_to_scriptpubkey(target)
            canonical = script.address(self._embit_network)
        except Exception:
            raise InvalidAddress(f"{target!r} is not a valid bitcoin address") from None
        if canonical.lower() != target.lower():
            raise NetworkMismatch(f"{target} is not a {self.network.name} address")
        return script.data


def _median_time(times: list[int]) -> int:
    """Core's GetMedianTimePast: the middle of the last (up to) 11 times, sorted."""
    window = sorted(times[-MEDIAN_TIME_SPAN:])
    return window[len(window) // 2]


def _check_amounts(amounts: Sequence[int]) -> list[int]:
    if isinstance(amounts, int) or not amounts:
        raise ChainError("fund() takes a non-empty list of amounts in sats, e.g. [100_000]")
    for amount in amounts:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ChainError(f"amount {amount!r} is not a positive number of sats")
    if sum(amounts) > MAX_MONEY:
        raise ChainError("the amounts add up to more than 21 million bitcoin")
    return list(amounts)


def _parse_tx_like(tx: TxLike, index: int) -> ParsedTx:
    try:
        if isinstance(tx, Transaction):
            raw = tx.serialize()
        elif isinstance(tx, str):
            raw = bytes.fromhex(tx)
        else:
            raw = bytes(tx)
        return parse_tx(raw)
    except Exception as e:
        raise ChainError(f"transaction {index} cannot be parsed ({e}): pass serialized bytes "
                         "or their hex") from None
