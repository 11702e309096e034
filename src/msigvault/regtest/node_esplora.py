"""The Esplora REST API the local regtest node answers (shapes and texts of Esplora's API.md).

Answers are ``(status, content_type, body)``. Errors are plain text with the status Esplora
(electrs) uses: 400 for a bad request, 404 for an unknown transaction, block or route.
"""

from __future__ import annotations

import json
import re
from typing import Callable, Optional

from ..address import script_from_address
from ..errors import MsigvaultError
from .blocks import parse_block
from .node_rpc import RpcError, _broadcast_error
from .nodestate import HEX, NodeState, Reject
from .shapes import esplora_status, esplora_tx, scripthash, sizes

TXS_PAGE = 25  # confirmed transactions per page
MEMPOOL_TXS = 50  # unconfirmed transactions in /txs
BLOCKS_PAGE = 10
FEE_TARGETS = list(range(1, 26)) + [144, 504, 1008]

Answer = tuple[int, str, bytes]
TEXT, JSON, BINARY = "text/plain", "application/json", "application/octet-stream"


class HttpError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


def _json(obj) -> Answer:
    return 200, JSON, json.dumps(obj).encode()


def _text(text: str) -> Answer:
    return 200, TEXT, text.encode()


class Esplora:
    """Routes Esplora REST requests to the node state."""

    def __init__(self, state: NodeState):
        self.state = state
        self.script_index: dict[str, bytes] = {}  # scripthash -> script, filled as scripts appear
        self.routes: list[tuple[str, re.Pattern, Callable]] = [
            ("GET", re.compile(p + "$"), fn) for p, fn in [
                (r"/blocks/tip/height", self.tip_height), (r"/blocks/tip/hash", self.tip_hash),
                (r"/blocks(?:/(\d+))?", self.blocks), (r"/block-height/(\d+)", self.block_height),
                (r"/block/([0-9a-fA-F]{64})", self.block), (r"/block/([0-9a-fA-F]{64})/header", self.block_header),
                (r"/block/([0-9a-fA-F]{64})/status", self.block_status),
                (r"/block/([0-9a-fA-F]{64})/txids", self.block_txids),
                (r"/block/([0-9a-fA-F]{64})/txid/(\d+)", self.block_txid),
                (r"/block/([0-9a-fA-F]{64})/txs(?:/(\d+))?", self.block_txs),
                (r"/block/([0-9a-fA-F]{64})/raw", self.block_raw),
                (r"/tx/([0-9a-fA-F]{64})", self.tx), (r"/tx/([0-9a-fA-F]{64})/hex", self.tx_hex),
                (r"/tx/([0-9a-fA-F]{64})/raw", self.tx_raw), (r"/tx/([0-9a-fA-F]{64})/status", self.tx_status),
                (r"/tx/([0-9a-fA-F]{64})/outspend/(\d+)", self.outspend),
                (r"/tx/([0-9a-fA-F]{64})/outspends", self.outspends),
                (r"/(address|scripthash)/([^/]+)", self.address),
                (r"/(address|scripthash)/([^/]+)/txs", self.address_txs),
                (r"/(address|scripthash)/([^/]+)/txs/chain(?:/([0-9a-fA-F]{64}))?", self.address_txs_chain),
                (r"/(address|scripthash)/([^/]+)/txs/mempool", self.address_txs_mempool),
                (r"/(address|scripthash)/([^/]+)/utxo", self.address_utxo),
                (r"/mempool", self.mempool), (r"/mempool/txids", self.mempool_txids),
                (r"/fee-estimates", self.fee_estimates),
            ]
        ] + [("POST", re.compile(r"/tx$"), self.post_tx)]

    def handle(self, method: str, path: str, body: bytes) -> Answer:
        for verb, pattern, fn in self.routes:
            match = pattern.match(path)
            if match and verb == method:
                with self.state.lock:
                    self.state.sync()
                    try:
                        args = [g for g in match.groups()]
                        return fn(body, *args) if verb == "POST" else fn(*args)
                    except HttpError as e:
                        return e.status, TEXT, e.text.encode()
        return 404, TEXT, b"Not found"

    # -- blocks ----------------------------------------------------------------------------

    def _height(self, block_hash: str) -> int:
        height = self.state.heights.get(block_hash.lower())
        if height is None:
            raise HttpError(404, "Block not found")
        return height

    def tip_height(self) -> Answer:
        return _text(str(self.state.height))

    def tip_hash(self) -> Answer:
        return _text(self.state.chain.tip)

    def block_height(self, height: str) -> Answer:
        h = int(height)
        if h > self.state.height:
            raise HttpError(404, "Block not found")
        return _text(self.state.chain.block_hash(h))

    def _block_obj(self, height: int) -> dict:
        chain = self.state.chain
        raw = chain.block_raw(height)
        header = raw[:80]
        _h, txs = parse_block(raw)
        weight = sum(sizes(t)[2] for t in txs) + (len(raw) - sum(len(t.raw) for t in txs)) * 4
        times = sorted(chain.block_time(x) for x in range(max(0, height - 10), height + 1))
        obj = {"id": chain.block_hash(height), "height": height,
               "version": int.from_bytes(header[:4], "little", signed=True),
               "timestamp": chain.block_time(height), "tx_count": len(txs), "size": len(raw),
               "weight": weight, "merkle_root": header[36:68][::-1].hex(),
               "previousblockhash": chain.block_hash(height - 1) if height else None,
               "mediantime": times[len(times) // 2],
               "nonce": int.from_bytes(header[76:80], "little"),
               "bits": int.from_bytes(header[72:76], "little"), "difficulty": 4.656542373906925e-10}
        return obj

    def blocks(self, start: Optional[str]) -> Answer:
        top = self.state.height if start is None else min(int(start), self.state.height)
        return _json([self._block_obj(h) for h in range(top, max(-1, top - BLOCKS_PAGE), -1)])

    def block(self, block_hash: str) -> Answer:
        return _json(self._block_obj(self._height(block_hash)))

    def block_header(self, block_hash: str) -> Answer:
        return _text(self.state.chain.block_raw(self._height(block_hash))[:80].hex())

    def block_status(self, block_hash: str) -> Answer:
        height = self.state.heights.get(block_hash.lower())
        if height is None:
            return _json({"in_best_chain": False})
        obj = {"in_best_chain": True, "height": height}
        if height < self.state.height:
            obj["next_best"] = self.state.chain.block_hash(height + 1)
        return _json(obj)

    def block_txids(self, block_hash: str) -> Answer:
        return _json(self.state.block_txids[self._height(block_hash)])

    def block_txid(self, block_hash: str, index: str) -> Answer:
        ids = self.state.block_txids[self._height(block_hash)]
        if int(index) >= len(ids):
            raise HttpError(404, "Transaction not found")
        return _text(ids[int(index)])

    def block_txs(self, block_hash: str, start: Optional[str]) -> Answer:
        ids = self.state.block_txids[self._height(block_hash)]
        first = int(start or 0)
        if first % TXS_PAGE:
            raise HttpError(400, "start index must be a multipication of 25")
        if first >= len(ids) and ids:
            raise HttpError(404, "start index out of range")
        return _json([self._tx_obj(t) for t in ids[first:first + TXS_PAGE]])

    def block_raw(self, block_hash: str) -> Answer:
        return 200, BINARY, self.state.chain.block_raw(self._height(block_hash))

    # -- transactions ------------------------------------------------------------------------

    def _rec(self, txid: str):
        rec = self.state.tx(txid.lower())
        if rec is None:
            raise HttpError(404, "Transaction not found")
        return rec

    def _tx_obj(self, txid: str) -> dict:
        rec = self._rec(txid)
        return esplora_tx(rec.ptx, self.state.network, self.state.prevouts(rec.ptx), rec.place,
                          rec.fee)

    def tx(self, txid: str) -> Answer:
        return _json(self._tx_obj(txid))

    def tx_hex(self, txid: str) -> Answer:
        return _text(self._rec(txid).ptx.raw.hex())

    def tx_raw(self, txid: str) -> Answer:
        return 200, BINARY, self._rec(txid).ptx.raw

    def tx_status(self, txid: str) -> Answer:
        return _json(esplora_status(self._rec(txid).place))

    def _outspend(self, txid: str, vout: int) -> dict:
        key = (txid, vout)
        spender = self.state.spender.get(key) or self.state.mempool_spender.get(key)
        if spender is None:
            return {"spent": False}
        rec = self.state.tx(spender)
        vin = next(i for i, inp in enumerate(rec.ptx.tx.vin) if (inp.txid.hex(), inp.vout) == key)
        return {"spent": True, "txid": spender, "vin": vin, "status": esplora_status(rec.place)}

    def outspend(self, txid: str, vout: str) -> Answer:
        rec = self._rec(txid)
        if int(vout) >= len(rec.ptx.tx.vout):
            raise HttpError(404, "Transaction output not found")
        return _json(self._outspend(rec.ptx.txid, int(vout)))

    def outspends(self, txid: str) -> Answer:
        rec = self._rec(txid)
        return _json([self._outspend(rec.ptx.txid, n) for n in range(len(rec.ptx.tx.vout))])

    def post_tx(self, body: bytes) -> Answer:
        text = body.decode("ascii", "replace").strip()
        if len(text) % 2 or not HEX.match(text):
            raise HttpError(400, "Invalid hex string")
        try:
            rec = self.state.accept(bytes.fromhex(text))
        except Reject as r:
            if r.reason == "txn-already-in-mempool":
                from .blocks import parse_tx

                return _text(parse_tx(bytes.fromhex(text)).txid)
            err: RpcError = _broadcast_error(r)
            raise HttpError(400, "sendrawtransaction RPC error: "
                            + json.dumps({"code": err.code, "message": err.message},
                                         separators=(",", ":"))) from None
        return _text(rec.ptx.txid)

    # -- addresses ---------------------------------------------------------------------------

    def _script(self, kind: str, value: str) -> bytes:
        if kind == "address":
            try:
                return script_from_address(value, self.state.network)
            except MsigvaultError:
                raise HttpError(400, "Invalid Bitcoin address") from None
        if len(value) != 64 or not HEX.match(value):
            raise HttpError(400, "Invalid scripthash")
        script = self._script_for_hash(value.lower())
        return script if script is not None else b"\x00unknown:" + bytes.fromhex(value)

    def _script_for_hash(self, value: str) -> Optional[bytes]:
        if value not in self.script_index or len(self.script_index) != len(self.state.by_script):
            self.script_index = {scripthash(s): s for s in self.state.by_script}
        script = self.script_index.get(value)
        if script is None:  # a script seen only in the mempool
            for rec in self.state.mempool.values():
                for o in rec.ptx.tx.vout:
                    if scripthash(o.script_pubkey.data) == value:
                        return o.script_pubkey.data
        return script

    def _stats(self, script: bytes, confirmed: bool) -> dict:
        recs = [r for r in self.state.history(script) if (r.place is not None) == confirmed]
        funded = spent = funded_sum = spent_sum = 0
        for rec in recs:
            for o in rec.ptx.tx.vout:
                if o.script_pubkey.data == script:
                    funded += 1
                    funded_sum += o.value
            if not rec.ptx.is_coinbase:
                for inp in rec.ptx.tx.vin:
                    prev = self.state.prevout(inp.txid.hex(), inp.vout)
                    if prev.script == script:
                        spent += 1
                        spent_sum += prev.amount
        return {"funded_txo_count": funded, "funded_txo_sum": funded_sum,
                "spent_txo_count": spent, "spent_txo_sum": spent_sum, "tx_count": len(recs)}

    def address(self, kind: str, value: str) -> Answer:
        script = self._script(kind, value)
        return _json({kind: value, "chain_stats": self._stats(script, True),
                      "mempool_stats": self._stats(script, False)})

    def _confirmed_newest_first(self, script: bytes) -> list:
        return [r for r in reversed(self.state.history(script)) if r.place is not None]

    def _mempool_newest_first(self, script: bytes) -> list:
        return [r for r in reversed(self.state.history(script)) if r.place is None]

    def address_txs(self, kind: str, value: str) -> Answer:
        script = self._script(kind, value)
        recs = self._mempool_newest_first(script)[:MEMPOOL_TXS] + self._confirmed_newest_first(script)[:TXS_PAGE]
        return _json([self._tx_obj(r.ptx.txid) for r in recs])

    def address_txs_chain(self, kind: str, value: str, last_seen: Optional[str]) -> Answer:
        recs = self._confirmed_newest_first(self._script(kind, value))
        if last_seen:
            ids = [r.ptx.txid for r in recs]
            recs = recs[ids.index(last_seen.lower()) + 1:] if last_seen.lower() in ids else []
        return _json([self._tx_obj(r.ptx.txid) for r in recs[:TXS_PAGE]])

    def address_txs_mempool(self, kind: str, value: str) -> Answer:
        recs = self._mempool_newest_first(self._script(kind, value))[:MEMPOOL_TXS]
        return _json([self._tx_obj(r.ptx.txid) for r in recs])

    def address_utxo(self, kind: str, value: str) -> Answer:
        script = self._script(kind, value)
        return _json([{"txid": txid, "vout": vout, "status": esplora_status(place), "value": o.amount}
                      for txid, vout, o, place in self.state.unspent(script)])

    # -- mempool and fees ------------------------------------------------------------------

    def mempool(self) -> Answer:
        pool = list(self.state.mempool.values())
        return _json({"count": len(pool), "vsize": sum(sizes(r.ptx)[1] for r in pool),
                      "total_fee": sum(r.fee for r in pool), "fee_histogram": []})

    def mempool_txids(self) -> Answer:
        return _json(list(self.state.mempool))

    def fee_estimates(self) -> Answer:
        rate = self.state.fee_rate()
        return _json({} if rate is None else {str(t): rate for t in FEE_TARGETS})
