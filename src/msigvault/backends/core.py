"""Bitcoin Core over JSON-RPC: wallet-less (``scantxoutset`` + the mempool) or a watch-only wallet.

Wallet-less mode reads unspent outputs with ``scantxoutset`` (one call for any number of
scripts; it reads the whole UTXO set, so it is slow on mainnet and given a long timeout) and
the mempool with ``getrawmempool`` + batched ``getrawtransaction``; it has no history. Wallet
mode (``wallet=NAME``) imports the vault's ranged descriptors into a watch-only descriptor
wallet (created if missing) and reads ``listunspent`` and ``listtransactions``.

Requests are batched (JSON-RPC arrays of at most ``batch_size`` calls). Authentication: user and
password, or Core's cookie file (``__cookie__:<hex>``).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..network import Network
from ._http import HttpTransport
from .base import (
    AcceptResult,
    Backend,
    BackendError,
    BackendProtocolError,
    BackendServerError,
    BackendUnsupported,
    BroadcastRejected,
    ChainUtxo,
    FeeEstimates,
    FEE_TARGETS,
    HistoryItem,
    RetryPolicy,
    Tip,
    TxNotFound,
    check_txid,
    redact,
    retryable,
    txid_of,
    verify_txid,
)

DEFAULT_BATCH = 500
SCAN_TIMEOUT_FACTOR = 30  # scantxoutset reads the whole UTXO set
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_WALLET_NOT_FOUND = -18
RPC_METHOD_NOT_FOUND = -32601
BROADCAST_CODES = (-25, -26, -27)
LISTTRANSACTIONS_PAGE = 1000
IMPORT_RANGE = 1000  # the first import watches this many indexes per branch (Core's keypool size)
COIN = Decimal(100_000_000)


class RpcReplyError(Exception):
    def __init__(self, code: Optional[int], message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class CoreBackend(Backend):
    """Bitcoin Core's JSON-RPC at ``url`` (``http://[user:password@]host:port``)."""

    name = "core"

    def __init__(self, url: str, network: "Network | str", *, cookie: "str | Path | None" = None,
                 wallet: Optional[str] = None, policy: RetryPolicy = RetryPolicy(),
                 batch_size: int = DEFAULT_BATCH, rescan_from: int = 0):
        from urllib.parse import urlsplit

        self.network = Network.from_name(network)
        self.where = "Bitcoin Core RPC " + redact(url) + (f" wallet {wallet}" if wallet else "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"{redact(url)} is not an http(s)://host:port URL",
                               what="Core RPC URL")
        auth = None
        if cookie is not None:
            auth = _read_cookie(Path(cookie), self.where)
        elif parts.username is not None:
            from urllib.parse import unquote

            auth = (unquote(parts.username), unquote(parts.password or ""))
        base = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        self.wallet = wallet
        self.batch_size = max(1, batch_size)
        self.rescan_from = rescan_from
        self.policy = policy
        self._http = HttpTransport(base, self.where, policy, auth=auth)
        self._scan_http = HttpTransport(
            base, self.where, RetryPolicy(policy.timeout * SCAN_TIMEOUT_FACTOR, policy.retries,
                                          policy.backoff), auth=auth)
        self._wallet_ready = False
        self._id = 0
        self._covered: Optional[dict[str, int]] = None  # descriptor -> range end the wallet watches
        self._block_of: dict[str, str] = {}  # txid -> block hash seen in scantxoutset (no txindex needed)

    @property
    def round_trips(self) -> int:
        return self._http.round_trips + self._scan_http.round_trips

    @property
    def has_history(self) -> bool:
        return bool(self.wallet)

    def close(self) -> None:
        self._http.close()
        self._scan_http.close()

    # -- JSON-RPC ----------------------------------------------------------------------------

    def _path(self, wallet: bool) -> str:
        if wallet and self.wallet:
            from urllib.parse import quote

            return "/wallet/" + quote(self.wallet, safe="")
        return "/"

    def call(self, method: str, *params, wallet: bool = False, transport=None) -> Any:
        """One RPC call; :class:`RpcReplyError` if Core answers with an error."""
        [reply] = self.batch([(method, list(params))], wallet=wallet, transport=transport)
        if isinstance(reply, RpcReplyError):
            raise reply
        return reply

    def batch(self, calls: Sequence[tuple[str, list]], *, wallet: bool = False,
              transport=None) -> list:
        """Results (or :class:`RpcReplyError`) of ``calls``, sent as JSON-RPC batches."""
        out: list = []
        for start in range(0, len(calls), self.batch_size):
            out += self._batch_once(calls[start:start + self.batch_size], wallet, transport)
        return out

    def _batch_once(self, calls, wallet, transport) -> list:
        ids = []
        body = []
        for method, params in calls:
            self._id += 1
            ids.append(self._id)
            body.append({"jsonrpc": "1.0", "id": self._id, "method": method, "params": params})
        what = calls[0][0] if len(calls) == 1 else f"{len(calls)} RPC calls ({calls[0][0]}, ...)"
        payload = body[0] if len(body) == 1 else body
        http = transport or self._http

        def parse(status: int, raw: bytes):
            try:
                reply = json.loads(raw, parse_float=Decimal)
            except (ValueError, UnicodeDecodeError):
                error = BackendProtocolError(
                    f"the answer (HTTP {status}) is not JSON: {raw[:80]!r}", where=self.where,
                    what=what)
                if status >= 500:
                    raise retryable(BackendServerError(
                        f"server error HTTP {status}: {raw[:200].decode('utf-8', 'replace')}",
                        code=status, where=self.where, what=what)) from None
                raise error from None
            return status, reply

        status, reply = http.request("POST", self._path(wallet), what,
                                     content=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"},
                                     ok_statuses=(200, 404, 500), parse=parse)
        replies = reply if isinstance(reply, list) else [reply]
        by_id = {}
        for r in replies:
            if not isinstance(r, dict) or "id" not in r:
                raise BackendProtocolError(f"malformed JSON-RPC reply {str(r)[:80]}",
                                           where=self.where, what=what)
            by_id[r["id"]] = r
        results = []
        for rid in ids:
            r = by_id.get(rid)
            if r is None:
                raise BackendProtocolError(f"the reply misses the answer to request {rid}",
                                           where=self.where, what=what)
            error = r.get("error")
            if error:
                if not isinstance(error, dict):
                    raise BackendProtocolError(f"malformed RPC error {str(error)[:80]}",
                                               where=self.where, what=what)
                results.append(RpcReplyError(error.get("code"), str(error.get("message", ""))))
            elif "result" not in r:
                raise BackendProtocolError("a JSON-RPC reply without a result", where=self.where,
                                           what=what)
            else:
                results.append(r["result"])
        return results

    def _fail(self, e: RpcReplyError, what: str) -> BackendError:
        return BackendServerError(f"Bitcoin Core said: {e.message} (code {e.code})", code=e.code,
                                  where=self.where, what=what)

    def _ok(self, method: str, *params, wallet: bool = False, transport=None) -> Any:
        try:
            return self.call(method, *params, wallet=wallet, transport=transport)
        except RpcReplyError as e:
            raise self._fail(e, method) from None

    # -- the chain -------------------------------------------------------------------------

    def genesis_hash(self) -> str:
        return _str(self._ok("getblockhash", 0), "getblockhash", self.where)

    def tip(self) -> Tip:
        info = self._ok("getblockchaininfo")
        try:
            height, best = int(info["blocks"]), str(info["bestblockhash"])
            when = info.get("time")
            if when is None:
                when = self._ok("getblockheader", best)["time"]
            return Tip(height, best, int(when))
        except (KeyError, TypeError, ValueError):
            raise BackendProtocolError(f"malformed getblockchaininfo answer {str(info)[:80]}",
                                       where=self.where, what="tip") from None

    def fee_estimates(self, targets: Sequence[int] = FEE_TARGETS) -> FeeEstimates:
        replies = self.batch([("estimatesmartfee", [t]) for t in targets])
        rates = {}
        for t, r in zip(targets, replies):
            if isinstance(r, RpcReplyError):
                raise self._fail(r, "estimatesmartfee")
            if isinstance(r, dict) and r.get("feerate") is not None:
                rates[t] = float(Decimal(str(r["feerate"])) * 100_000)  # BTC/kvB -> sat/vB
        return FeeEstimates(rates)

    # -- scripts ---------------------------------------------------------------------------

    def utxos(self, script_pubkeys: Sequence[bytes]) -> list[ChainUtxo]:
        if self.wallet:
            return self._wallet_utxos(script_pubkeys)
        wanted = set(map(bytes, script_pubkeys))
        if not wanted:
            return []
        objects = [f"raw({s.hex()})" for s in wanted]
        result = self._ok("scantxoutset", "start", objects, transport=self._scan_http)
        try:
            confirmed = [ChainUtxo(check_txid(u["txid"]), int(u["vout"]), _sats(u["amount"]),
                                   bytes.fromhex(u["scriptPubKey"]), int(u["height"]))
                         for u in result["unspents"]]
            for u in result["unspents"]:
                if isinstance(u.get("blockhash"), str):
                    self._block_of[u["txid"]] = u["blockhash"]
        except (KeyError, TypeError, ValueError, BackendError) as e:
            raise BackendProtocolError(f"malformed scantxoutset answer ({e})", where=self.where,
                                       what="scantxoutset") from None
        return self._with_mempool(confirmed, wanted)

    def _with_mempool(self, confirmed: list[ChainUtxo], wanted: set) -> list[ChainUtxo]:
        """Add outputs paying ``wanted`` from mempool transactions; drop those they spend."""
        txids = self._ok("getrawmempool")
        if not isinstance(txids, list):
            raise BackendProtocolError("malformed getrawmempool answer", where=self.where,
                                       what="getrawmempool")
        from ..psbt import fields as F

        spent, created = set(), []
        for txid, raw in self.get_txs(txids).items():
            tx = F.parse_tx(raw, "transaction")
            for prev_txid, n, _ss, _seq in tx.vin:
                spent.add((prev_txid[::-1].hex(), n))
            for n, (amount, script) in enumerate(_outputs(tx)):
                if script in wanted:
                    created.append(ChainUtxo(txid, n, amount, script, None))
        return [u for u in confirmed + created if (u.txid, u.vout) not in spent]

    # -- wallet mode -------------------------------------------------------------------------

    def _ensure_wallet(self) -> None:
        if self._wallet_ready:
            return
        loaded = self._ok("listwallets")
        if self.wallet not in loaded:
            try:
                self.call("loadwallet", self.wallet)
            except RpcReplyError as e:
                if e.code not in (RPC_WALLET_NOT_FOUND, RPC_METHOD_NOT_FOUND):
                    raise self._fail(e, "loadwallet") from None
                self._ok("createwallet", self.wallet, True, True, "", False, True)
        self._wallet_ready = True

    def watch(self, descriptors: Sequence[str], range_end: int) -> None:
        """Import the vault's descriptors up to ``range_end`` unless the wallet covers that range.

        Each import makes Core rescan from ``rescan_from``, so the range grows in steps of at
        least doubling (and 1,000 to begin with), and a range the wallet already has (from an
        earlier run: ``listdescriptors``) is not imported again.
        """
        if not self.wallet:
            return
        self._ensure_wallet()
        if self._covered is None:
            self._covered = self._wallet_ranges(descriptors)
        if all(self._covered.get(d, -1) >= range_end for d in descriptors):
            return
        end = max(range_end, 2 * max(self._covered.get(d, -1) for d in descriptors) + 1, IMPORT_RANGE - 1)
        requests = [{"desc": d, "range": [0, end], "timestamp": self.rescan_from,
                     "active": False, "internal": i == 1}
                    for i, d in enumerate(descriptors)]
        results = self._ok("importdescriptors", requests, wallet=True)
        for d, r in zip(descriptors, results):
            if not isinstance(r, dict) or not r.get("success"):
                message = (r.get("error") or {}).get("message") if isinstance(r, dict) else r
                raise BackendServerError(f"Bitcoin Core would not import {d[:60]}...: {message}",
                                         where=self.where, what="importdescriptors")
            self._covered[d] = end

    def _wallet_ranges(self, descriptors: Sequence[str]) -> dict[str, int]:
        """{our descriptor: the end of the range the wallet already watches}, from listdescriptors."""
        from ..errors import MsigvaultError
        from ..policy.vault import Vault

        try:
            listed = self._ok("listdescriptors", wallet=True).get("descriptors", [])
        except (BackendServerError, AttributeError):
            return {}
        ours = {}
        for d in descriptors:
            try:
                ours[(Vault.from_descriptor(d, network=self.network).policy_id, "/1/*" in d)] = d
            except MsigvaultError:
                continue
        covered: dict[str, int] = {}
        for entry in listed if isinstance(listed, list) else []:
            try:
                text, rng = entry["desc"], entry.get("range")
                key = (Vault.from_descriptor(text, network=self.network, require_checksum=False).policy_id,
                       "/1/*" in text)
            except (KeyError, TypeError, MsigvaultError):
                continue
            if key in ours and isinstance(rng, list) and len(rng) == 2 and rng[0] == 0:
                covered[ours[key]] = max(covered.get(ours[key], -1), int(rng[1]))
        return covered

    def _addresses(self, script_pubkeys: Iterable[bytes]) -> dict[str, bytes]:
        from ..address import address_from_script

        return {address_from_script(bytes(s), self.network): bytes(s) for s in script_pubkeys}

    def _wallet_utxos(self, script_pubkeys: Sequence[bytes]) -> list[ChainUtxo]:
        self._ensure_wallet()
        by_address = self._addresses(script_pubkeys)
        if not by_address:
            return []
        addresses = list(by_address)
        calls = [("getblockcount", [])] + [("listunspent", [0, 9_999_999, addresses[i:i + 1000]])
                                           for i in range(0, len(addresses), 1000)]
        tip, *replies = self.batch(calls, wallet=True)  # one request: the same tip as the counts
        if isinstance(tip, RpcReplyError) or not isinstance(tip, int):
            raise BackendProtocolError("malformed getblockcount answer", where=self.where,
                                       what="getblockcount")
        out = []
        for reply in replies:
            if isinstance(reply, RpcReplyError):
                raise self._fail(reply, "listunspent")
            for u in reply:
                try:
                    conf = int(u["confirmations"])
                    script = bytes.fromhex(u["scriptPubKey"])
                    out.append(ChainUtxo(check_txid(u["txid"]), int(u["vout"]), _sats(u["amount"]),
                                         script, tip - conf + 1 if conf > 0 else None))
                except (KeyError, TypeError, ValueError) as e:
                    raise BackendProtocolError(f"malformed listunspent entry ({e})",
                                               where=self.where, what="listunspent") from None
        return out

    def _wallet_entries(self) -> list[dict]:
        entries, skip = [], 0
        while True:
            page = self._ok("listtransactions", "*", LISTTRANSACTIONS_PAGE, skip, True, wallet=True)
            if not isinstance(page, list):
                raise BackendProtocolError("malformed listtransactions answer", where=self.where,
                                           what="listtransactions")
            entries = page + entries
            if len(page) < LISTTRANSACTIONS_PAGE:
                return entries
            skip += LISTTRANSACTIONS_PAGE

    def history(self, script_pubkeys: Sequence[bytes]) -> dict[bytes, tuple[HistoryItem, ...]]:
        if not self.wallet:
            return Backend.history(self, script_pubkeys)
        self._ensure_wallet()
        by_address = self._addresses(script_pubkeys)
        found: dict[bytes, dict[str, Optional[int]]] = {s: {} for s in by_address.values()}
        received: dict[tuple[str, int], bytes] = {}
        sends: dict[str, Optional[int]] = {}
        for e in self._wallet_entries():
            try:
                txid, conf = check_txid(e["txid"]), int(e.get("confirmations", 0))
                height = int(e["blockheight"]) if conf > 0 else None  # Core gives it when confirmed
                if e.get("category") in ("receive", "generate", "immature"):
                    script = by_address.get(e.get("address", ""))
                    if script is not None:
                        found[script][txid] = height
                        received[(txid, int(e["vout"]))] = script
                elif e.get("category") == "send":
                    sends[txid] = height
            except (KeyError, TypeError, ValueError) as err:
                raise BackendProtocolError(f"malformed listtransactions entry ({err})",
                                           where=self.where, what="listtransactions") from None
        self._attach_spends(sends, received, found)
        return {s: tuple(HistoryItem(t, h) for t, h in txs.items()) for s, txs in found.items()}

    def _attach_spends(self, sends: dict, received: dict, found: dict) -> None:
        """A wallet 'send' names the payee, not the script spent: read the inputs."""
        from ..psbt import fields as F

        for txid, raw in self.get_txs(sends).items():
            for prev_txid, n, _ss, _seq in F.parse_tx(raw, "transaction").vin:
                script = received.get((prev_txid[::-1].hex(), n))
                if script is not None:
                    found[script][txid] = sends[txid]

    # -- transactions ------------------------------------------------------------------------

    def _raw_tx(self, txid: str) -> bytes:
        try:
            return _hexbytes(self.call("getrawtransaction", txid, False), self.where)
        except RpcReplyError as e:
            if e.code == RPC_INVALID_ADDRESS_OR_KEY:
                raise TxNotFound(f"Bitcoin Core knows no transaction {txid} ({e.message}); a "
                                 "node without -txindex finds only mempool and wallet "
                                 "transactions", where=self.where, what="getrawtransaction") from None
            raise self._fail(e, "getrawtransaction") from None

    def get_txs(self, txids: Iterable[str]) -> dict[str, bytes]:
        ids = [check_txid(t) for t in dict.fromkeys(txids)]
        found: dict[str, bytes] = {}
        if self.wallet and ids:  # the wallet has its own transactions without -txindex
            self._ensure_wallet()
            for txid, r in zip(ids, self.batch([("gettransaction", [t, True]) for t in ids], wallet=True)):
                if isinstance(r, dict) and isinstance(r.get("hex"), str):
                    found[txid] = verify_txid(_hexbytes(r["hex"], self.where), txid, self.where)
            ids = [t for t in ids if t not in found]
        return {**found, **self._raw_txs(ids)}

    def _raw_txs(self, ids: list) -> dict[str, bytes]:
        # with the block hash scantxoutset gave, Core finds a transaction without -txindex
        replies = self.batch([("getrawtransaction", [t, False] + ([self._block_of[t]] if t in self._block_of else []))
                              for t in ids])
        out = {}
        for txid, r in zip(ids, replies):
            if isinstance(r, RpcReplyError):
                if r.code == RPC_INVALID_ADDRESS_OR_KEY:
                    raise TxNotFound(f"Bitcoin Core knows no transaction {txid} ({r.message})",
                                     where=self.where, what="getrawtransaction")
                raise self._fail(r, "getrawtransaction")
            out[txid] = verify_txid(_hexbytes(r, self.where), txid, self.where)
        return out

    def broadcast(self, raw_tx: bytes) -> str:
        txid = txid_of(raw_tx)
        try:
            got = self.call("sendrawtransaction", bytes(raw_tx).hex())
        except RpcReplyError as e:
            if e.code in BROADCAST_CODES:
                raise BroadcastRejected(e.message, code=e.code, where=self.where, txid=txid) from None
            raise self._fail(e, "sendrawtransaction") from None
        if got != txid:
            raise BackendProtocolError(f"the node answered txid {got} for transaction {txid}",
                                       where=self.where, what="sendrawtransaction")
        return txid

    def test_accept(self, raw_tx: bytes) -> AcceptResult:
        txid = txid_of(raw_tx)
        try:
            [r] = self.call("testmempoolaccept", [bytes(raw_tx).hex()])
        except RpcReplyError as e:
            if e.code == RPC_METHOD_NOT_FOUND:
                raise BackendUnsupported("this node has no testmempoolaccept", where=self.where,
                                         what="testmempoolaccept") from None
            raise self._fail(e, "testmempoolaccept") from None
        except (TypeError, ValueError):
            raise BackendProtocolError("malformed testmempoolaccept answer", where=self.where,
                                       what="testmempoolaccept") from None
        if r.get("allowed"):
            fee = r.get("fees", {}).get("base")
            return AcceptResult(txid, True, vsize=r.get("vsize"),
                                fee=_sats(fee) if fee is not None else None)
        return AcceptResult(txid, False, reason=str(r.get("reject-details") or r.get("reject-reason")))


def _read_cookie(path: Path, where: str) -> tuple[str, str]:
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise BackendError(f"cannot read the cookie file {path} ({e.strerror}): is the node "
                           "running, and is this its data directory?", where=where,
                           what="authentication") from None
    user, sep, password = text.partition(":")
    if not sep:
        raise BackendError(f"{path} is not a Core cookie file (user:password)", where=where,
                           what="authentication")
    return user, password


def _sats(value: Any) -> int:
    """A BTC amount from JSON (Decimal) as sats; ValueError unless it is a whole number of sats."""
    try:
        sats = Decimal(str(value)) * COIN
    except (InvalidOperation, TypeError):
        raise ValueError(f"{value!r} is not an amount") from None
    if sats != sats.to_integral_value() or sats < 0 or sats > 21_000_000 * COIN:
        raise ValueError(f"{value!r} is not a whole number of sats within 21M BTC")
    return int(sats)


def _str(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str):
        raise BackendProtocolError(f"expected a string, got {str(value)[:60]}", where=where, what=what)
    return value


def _hexbytes(value: Any, where: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise BackendProtocolError(f"expected hex, got {str(value)[:60]}", where=where,
                                   what="getrawtransaction") from None


def _outputs(tx) -> list[tuple[int, bytes]]:
    return [(amount, bytes(script)) for amount, script in tx.vout]
