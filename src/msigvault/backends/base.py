"""The one interface every chain backend implements, its typed results and its errors.

A backend answers questions about one network: the tip, fee estimates, the unspent outputs and
history of a set of scriptPubKeys, a transaction by txid, and it broadcasts. Everything a server
says is a claim: :meth:`Backend.get_tx` checks that the bytes hash to the txid asked for, and the
creator still fetches every previous transaction (see :mod:`msigvault.backends.scan`).

Errors: every failure is a :class:`BackendError` (a :class:`~msigvault.errors.ChainError`) that
says what failed and where (the backend's URL without its password).
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Optional, Sequence, TypeVar

from ..errors import ChainError, NetworkMismatch
from ..network import Network

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0  # seconds for one request
DEFAULT_RETRIES = 2  # further attempts after a transport failure (not after a server's "no")
DEFAULT_BACKOFF = 0.2  # seconds before the first retry; doubled each time
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a larger answer is refused before it is parsed
FEE_TARGETS = (1, 3, 6, 12, 25)

# Genesis block hashes: how a backend proves which network it serves.
GENESIS = {
    "mainnet": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "testnet": "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    "signet": "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
    "regtest": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
}
TESTNET4_GENESIS = "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"


class BackendError(ChainError):
    """A chain backend failed or refused; ``where`` names the backend, ``what`` the request."""

    code = "backend.error"

    def __init__(self, message: str, *, where: str = "", what: str = ""):
        self.where = where
        self.what = what
        prefix = f"{what} at {where}: " if what and where else (f"{where}: " if where else "")
        super().__init__(prefix + message)


class BackendUnavailable(BackendError):
    """The server could not be reached (refused, reset, name not found)."""

    code = "backend.unavailable"


class BackendTimeout(BackendUnavailable):
    """The server did not answer within the timeout."""

    code = "backend.timeout"


class BackendAuthError(BackendError):
    """The server refused our credentials."""

    code = "backend.auth"


class BackendProtocolError(BackendError):
    """The answer was truncated, malformed, too large or not of the documented shape."""

    code = "backend.protocol"


class BackendServerError(BackendError):
    """The server answered with an error (HTTP 5xx or an RPC error): ``rpc_code`` is the RPC
    error code or HTTP status it gave, if any."""

    code = "backend.server-error"

    def __init__(self, message: str, *, code: Optional[int] = None, where: str = "", what: str = ""):
        self.rpc_code = code
        super().__init__(message, where=where, what=what)


class BackendUnsupported(BackendError):
    """This backend (or this server) cannot answer that question."""

    code = "backend.unsupported"


class TxNotFound(BackendError):
    """The server knows no transaction with that txid."""

    code = "backend.tx-not-found"


class BackendNetworkMismatch(BackendError, NetworkMismatch):
    """The server serves another network than the vault's."""

    code = "backend.network-mismatch"


class BroadcastRejected(BackendError):
    """The node refused the transaction; ``reason`` is its reject reason as it worded it."""

    code = "backend.broadcast-rejected"

    def __init__(self, reason: str, *, code: Optional[int] = None, where: str = "", txid: str = ""):
        self.reason = reason
        self.rpc_code = code
        self.txid = txid
        what = f"broadcast of {txid}" if txid else "broadcast"
        super().__init__(f"the node rejected the transaction: {reason}; nothing was broadcast",
                         where=where, what=what)


class BackendDisagreement(BackendError):
    """Two backends gave different answers to the same question."""

    code = "backend.disagreement"


@dataclass(frozen=True)
class Tip:
    """The best block: ``height``, ``hash`` (display hex), ``time`` (unix seconds)."""

    height: int
    hash: str
    time: int


@dataclass(frozen=True)
class ChainUtxo:
    """An unspent output as a backend reports it. ``height`` is None while unconfirmed."""

    txid: str
    vout: int
    amount: int
    script_pubkey: bytes
    height: Optional[int] = None

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"

    def confirmations(self, tip_height: int) -> int:
        return 0 if self.height is None else max(0, tip_height - self.height + 1)


@dataclass(frozen=True)
class HistoryItem:
    """A transaction touching a script: ``height`` None while unconfirmed."""

    txid: str
    height: Optional[int] = None

    def confirmations(self, tip_height: int) -> int:
        return 0 if self.height is None else max(0, tip_height - self.height + 1)


@dataclass(frozen=True)
class AcceptResult:
    """A mempool-acceptance test: ``allowed``, or the node's ``reason``."""

    txid: str
    allowed: bool
    reason: str = ""
    vsize: Optional[int] = None
    fee: Optional[int] = None


@dataclass(frozen=True)
class FeeEstimates:
    """Fee rates in sat/vB by confirmation target (blocks); missing targets had no estimate."""

    rates: Mapping[int, float] = field(default_factory=dict)

    def for_target(self, target: int) -> Optional[float]:
        """The estimate for ``target`` blocks, else the nearest longer target's, else None."""
        longer = sorted(t for t in self.rates if t >= target)
        return self.rates[longer[0]] if longer else None


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and bounded retries with exponential backoff."""

    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF

    def run(self, call: Callable[[], T]) -> T:
        """``call()``, retried on :class:`BackendUnavailable` (timeouts included) and 5xx."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (BackendUnavailable, _Retryable) as e:
                if attempt == self.retries:
                    raise (e.error if isinstance(e, _Retryable) else e) from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


class _Retryable(Exception):
    """Wraps a server error worth retrying (HTTP 5xx without an RPC answer)."""

    def __init__(self, error: BackendError):
        super().__init__(str(error))
        self.error = error


def retryable(error: BackendError) -> _Retryable:
    return _Retryable(error)


class Backend(abc.ABC):
    """Chain access for one network. Use as a context manager; :meth:`close` releases sockets."""

    network: Network
    where: str = ""

    # -- the chain -------------------------------------------------------------------------

    @abc.abstractmethod
    def tip(self) -> Tip:
        """The best block."""

    @abc.abstractmethod
    def genesis_hash(self) -> str:
        """Hash of block 0: which network the server serves."""

    def fee_estimates(self, targets: Sequence[int] = FEE_TARGETS) -> FeeEstimates:
        raise BackendUnsupported("this backend gives no fee estimates", where=self.where,
                                 what="fee estimates")

    # -- scripts ---------------------------------------------------------------------------

    @abc.abstractmethod
    def utxos(self, script_pubkeys: Sequence[bytes]) -> list[ChainUtxo]:
        """Unspent outputs (confirmed and in the mempool) paying any of ``script_pubkeys``."""

    def history(self, script_pubkeys: Sequence[bytes]) -> dict[bytes, tuple[HistoryItem, ...]]:
        """For each script, the transactions that paid or spent it (empty tuple if none)."""
        raise BackendUnsupported(
            "this backend has no script history (Bitcoin Core without a wallet only sees "
            "unspent outputs): use a watch-only wallet (core+http://...?wallet=NAME), Esplora "
            "or Electrum", where=self.where, what="history")

    @property
    def has_history(self) -> bool:
        return type(self).history is not Backend.history

    def watch(self, descriptors: Sequence[str], range_end: int) -> None:
        """Tell a wallet-based backend to track these ranged descriptors up to ``range_end``."""

    # -- transactions ----------------------------------------------------------------------

    @abc.abstractmethod
    def _raw_tx(self, txid: str) -> bytes:
        """The serialized transaction as the server sent it (unchecked)."""

    def get_tx(self, txid: str) -> bytes:
        """The serialized transaction ``txid``, checked to hash to ``txid``."""
        txid = check_txid(txid)
        return verify_txid(self._raw_tx(txid), txid, self.where)

    def get_txs(self, txids: Iterable[str]) -> dict[str, bytes]:
        """Several transactions (each checked); backends that can batch override this."""
        return {t: self.get_tx(t) for t in dict.fromkeys(txids)}

    @abc.abstractmethod
    def broadcast(self, raw_tx: bytes) -> str:
        """Send ``raw_tx`` to the network; its txid, or :class:`BroadcastRejected`."""

    def test_accept(self, raw_tx: bytes) -> AcceptResult:
        raise BackendUnsupported("this backend cannot test mempool acceptance", where=self.where,
                                 what="testmempoolaccept")

    # -- lifecycle -------------------------------------------------------------------------

    def check_network(self) -> None:
        """Raise :class:`BackendNetworkMismatch` unless the server serves ``self.network``."""
        got = self.genesis_hash()
        want = GENESIS[self.network.name]
        if got == want or (self.network.name == "testnet" and got == TESTNET4_GENESIS):
            return
        names = [n for n, h in GENESIS.items() if h == got] or (
            ["testnet4"] if got == TESTNET4_GENESIS else [f"an unknown chain (genesis {got})"])
        raise BackendNetworkMismatch(
            f"the server serves {names[0]}, but the vault is for {self.network.name}: "
            "point --backend at a node of the vault's network", where=self.where,
            what="network check")

    def close(self) -> None:
        """Release connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_txid(txid: str) -> str:
    """A txid as 64 lowercase hex digits; BackendError otherwise."""
    t = str(txid).strip().lower()
    if len(t) != 64 or any(c not in "0123456789abcdef" for c in t):
        raise BackendError(f"{txid!r} is not a txid (64 hex digits)", what="transaction look-up")
    return t


def txid_of(raw: bytes) -> str:
    """The txid (display hex) of a serialized transaction; BackendProtocolError if malformed."""
    from ..psbt import fields as F
    from ..psbt.common import legacy_txid

    try:
        return legacy_txid(F.parse_tx(bytes(raw), "transaction"))[::-1].hex()
    except Exception as e:  # noqa: BLE001  (any parse failure is a malformed answer)
        raise BackendProtocolError(f"not a valid serialized transaction ({e})") from None


def verify_txid(raw: bytes, txid: str, where: str = "") -> bytes:
    """``raw`` if it hashes to ``txid``; a BackendProtocolError (the server lied) otherwise."""
    try:
        got = txid_of(raw)
    except BackendProtocolError as e:
        raise BackendProtocolError(f"the server sent a malformed transaction for {txid}: {e}",
                                   where=where, what="transaction look-up") from None
    if got != txid:
        raise BackendProtocolError(
            f"asked for transaction {txid} but the server sent {got}: do not trust this server",
            where=where, what="transaction look-up")
    return bytes(raw)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
