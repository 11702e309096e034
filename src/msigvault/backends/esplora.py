"""Esplora's REST API (Blockstream's electrs, mempool.space, self-hosted) over httpx.

Esplora has no batch requests: per-script questions run with bounded concurrency
(``concurrency`` requests in flight). Script hashes are SHA-256 of the scriptPubKey, in hex.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

from ..network import Network
from ._http import HttpTransport
from .base import (
    Backend,
    BackendError,
    BackendProtocolError,
    BackendServerError,
    BroadcastRejected,
    ChainUtxo,
    FEE_TARGETS,
    FeeEstimates,
    HistoryItem,
    RetryPolicy,
    Tip,
    TxNotFound,
    check_txid,
    redact,
    txid_of,
    verify_txid,
)

T = TypeVar("T")
DEFAULT_CONCURRENCY = 8
TXS_PAGE = 25
MAX_PAGES = 4000  # 100,000 confirmed transactions for one script
BROADCAST_PREFIX = "sendrawtransaction RPC error:"


class EsploraBackend(Backend):
    """Esplora at ``url`` (e.g. ``http://127.0.0.1:3002`` or ``https://host/api``)."""

    name = "esplora"

    def __init__(self, url: str, network: "Network | str", *, policy: RetryPolicy = RetryPolicy(),
                 concurrency: int = DEFAULT_CONCURRENCY):
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"{redact(url)} is not an http(s)://host[:port][/path] URL",
                               what="Esplora URL")
        self.network = Network.from_name(network)
        self.where = "Esplora " + redact(url)
        self.concurrency = max(1, concurrency)
        self._http = HttpTransport(url, self.where, policy)

    @property
    def round_trips(self) -> int:
        return self._http.round_trips

    def close(self) -> None:
        self._http.close()

    # -- requests ----------------------------------------------------------------------------

    def _get(self, path: str, what: str, *, not_found: Optional[Callable[[], Exception]] = None) -> bytes:
        status, body = self._http.request("GET", path, what)
        if status == 404 and not_found is not None:
            raise not_found()
        if status != 200:
            raise BackendServerError(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}",
                                     code=status, where=self.where, what=what)
        return body

    def _json(self, path: str, what: str, **kw) -> Any:
        body = self._get(path, what, **kw)
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BackendProtocolError(f"the answer is not JSON: {body[:80]!r}", where=self.where,
                                       what=what) from None

    def _text(self, path: str, what: str, **kw) -> str:
        try:
            return self._get(path, what, **kw).decode("ascii").strip()
        except UnicodeDecodeError:
            raise BackendProtocolError("the answer is not text", where=self.where, what=what) from None

    def _parallel(self, fn: Callable[[Any], T], items: Sequence) -> list[T]:
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _shape(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise BackendProtocolError(f"the answer does not have Esplora's shape ({e})",
                                       where=self.where, what=what) from None

    # -- the chain -------------------------------------------------------------------------

    def genesis_hash(self) -> str:
        return check_txid(self._text("/block-height/0", "block-height/0"))

    def tip(self) -> Tip:
        height = self._shape("tip", lambda: int(self._text("/blocks/tip/height", "tip height")))
        block_hash = self._text(f"/block-height/{height}", "tip hash")
        block = self._json(f"/block/{check_txid(block_hash)}", "tip block")
        return self._shape("tip", lambda: Tip(height, block_hash, int(block["timestamp"])))

    def fee_estimates(self, targets: Sequence[int] = FEE_TARGETS) -> FeeEstimates:
        est = self._json("/fee-estimates", "fee-estimates")
        return self._shape("fee-estimates", lambda: FeeEstimates(
            {int(k): float(v) for k, v in est.items()}))

    # -- scripts ---------------------------------------------------------------------------

    def utxos(self, script_pubkeys: Sequence[bytes]) -> list[ChainUtxo]:
        scripts = list(dict.fromkeys(map(bytes, script_pubkeys)))

        def one(script: bytes) -> list[ChainUtxo]:
            rows = self._json(f"/scripthash/{_scripthash(script)}/utxo", "utxo")
            return self._shape("utxo", lambda: [
                ChainUtxo(check_txid(r["txid"]), int(r["vout"]), _amount(r["value"]), script,
                          int(r["status"]["block_height"]) if r["status"].get("confirmed") else None)
                for r in rows])

        return [u for batch in self._parallel(one, scripts) for u in batch]

    def history(self, script_pubkeys: Sequence[bytes]) -> dict[bytes, tuple[HistoryItem, ...]]:
        scripts = list(dict.fromkeys(map(bytes, script_pubkeys)))
        return dict(zip(scripts, self._parallel(self._script_history, scripts)))

    def _script_history(self, script: bytes) -> tuple[HistoryItem, ...]:
        sh = _scripthash(script)
        rows = self._json(f"/scripthash/{sh}/txs", "txs")
        items = self._shape("txs", lambda: [_item(r) for r in rows])
        page = [i for i in items if i.height is not None]
        for _ in range(MAX_PAGES):
            if len(page) < TXS_PAGE:
                return tuple(dict.fromkeys(items))
            more = self._json(f"/scripthash/{sh}/txs/chain/{page[-1].txid}", "txs/chain")
            page = self._shape("txs/chain", lambda: [_item(r) for r in more])
            items += page
        raise BackendProtocolError("more than 100,000 transactions for one script",
                                   where=self.where, what="txs")

    # -- transactions ------------------------------------------------------------------------

    def _raw_tx(self, txid: str) -> bytes:
        text = self._text(f"/tx/{txid}/hex", "tx hex", not_found=lambda: TxNotFound(
            f"Esplora knows no transaction {txid}", where=self.where, what="tx hex"))
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise BackendProtocolError(f"expected hex, got {text[:60]!r}", where=self.where,
                                       what="tx hex") from None

    def get_txs(self, txids: Iterable[str]) -> dict[str, bytes]:
        ids = [check_txid(t) for t in dict.fromkeys(txids)]
        raws = self._parallel(self._raw_tx, ids)
        return {t: verify_txid(r, t, self.where) for t, r in zip(ids, raws)}

    def broadcast(self, raw_tx: bytes) -> str:
        txid = txid_of(raw_tx)
        status, body = self._http.request("POST", "/tx", "broadcast",
                                          content=bytes(raw_tx).hex().encode(),
                                          headers={"Content-Type": "text/plain"})
        text = body.decode("utf-8", "replace").strip()
        if status == 200:
            if text != txid:
                raise BackendProtocolError(f"the server answered {text[:70]!r} for {txid}",
                                           where=self.where, what="broadcast")
            return txid
        if status == 400:
            reason, code = _rpc_reason(text)
            raise BroadcastRejected(reason, code=code, where=self.where, txid=txid)
        raise BackendServerError(f"HTTP {status}: {text[:200]}", code=status, where=self.where,
                                 what="broadcast")


def _scripthash(script: bytes) -> str:
    return hashlib.sha256(script).hexdigest()


def _amount(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 21_000_000 * 10**8:
        raise ValueError(f"{value!r} is not an amount in sats")
    return value


def _item(row: dict) -> HistoryItem:
    status = row["status"]
    return HistoryItem(check_txid(row["txid"]),
                       int(status["block_height"]) if status.get("confirmed") else None)


def _rpc_reason(text: str) -> tuple[str, Optional[int]]:
    """The node's reason from electrs' ``sendrawtransaction RPC error: {"code":..,"message":..}``."""
    if text.startswith(BROADCAST_PREFIX):
        try:
            err = json.loads(text[len(BROADCAST_PREFIX):])
            return str(err["message"]), int(err["code"])
        except (ValueError, KeyError, TypeError):
            pass
    return text[:300] or "no reason given", None
