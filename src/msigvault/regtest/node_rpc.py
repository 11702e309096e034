"""The Bitcoin Core JSON-RPC methods the local regtest node answers, in Core's shapes and codes.

Error codes are Core's (src/rpc/protocol.h); reject reasons and messages are Core's words
(src/common/messages.cpp, src/rpc/*.cpp). See docs/backends.md for the list of methods.
"""

from __future__ import annotations

import time as _time
from typing import Any, Callable, Optional

from ..address import script_from_address
from ..errors import MsigvaultError
from .blocks import parse_block, parse_tx
from .chain import ANYONE_CAN_SPEND_SCRIPT_PUBKEY
from .nodestate import HEX, NodeState, Reject, Wallet
from .shapes import btc, core_script_pubkey, core_tx, script_address, script_desc, sizes

# src/rpc/protocol.h
RPC_INVALID_REQUEST = -32600
RPC_METHOD_NOT_FOUND = -32601
RPC_INVALID_PARAMS = -32602
RPC_INTERNAL_ERROR = -32603
RPC_PARSE_ERROR = -32700
RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_WALLET_ERROR = -4
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_DESERIALIZATION_ERROR = -22
RPC_VERIFY_ERROR = -25
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_UTXO_SET = -27
RPC_WALLET_NOT_FOUND = -18
RPC_WALLET_NOT_SPECIFIED = -19
RPC_WALLET_ALREADY_EXISTS = -4

NODE_VERSION = 310000  # Core 31.0: -txospenderindex (ElectrumX 2 requires it)
SUBVERSION = "/msigvault-regtest:0.1.0/"
MAX_GENERATE = 1000  # blocks per generatetoaddress call
MAX_SCAN_OBJECTS = 100_000
MAX_DESCRIPTOR_RANGE = 1_000_000
DEFAULT_RANGE = 1000  # Core's default for ranged descriptors (scantxoutset, keypool)
NO_FEE_ESTIMATE = "Insufficient data or no feerate found"
NO_TX = "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."
NO_TX_WITHOUT_INDEX = ("No such mempool transaction. Use -txindex or provide a block hash to enable "
                       "blockchain transaction queries. Use gettransaction for wallet transactions.")


class RpcError(Exception):
    """An RPC error reply: Core's code and message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise RpcError(RPC_TYPE_ERROR, f"JSON value of type {_type(value)} is not of expected type string")
    if len(value) % 2 or not HEX.match(value):
        raise RpcError(RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{value}')")
    return bytes.fromhex(value)


def _txid(value: Any, name: str = "txid") -> str:
    raw = _hex(value, name)
    if len(raw) != 32:
        raise RpcError(RPC_INVALID_PARAMETER,
                       f"{name} must be of length 64 (not {len(value)}, for '{value}')")
    return value.lower()


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(RPC_TYPE_ERROR, f"JSON value of type {_type(value)} for field {name} is not of expected type number")
    return value


def _type(value: Any) -> str:
    return {bool: "bool", int: "number", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), "unknown")


def _verbosity(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    return _int(value, "verbosity")


class CoreRpc:
    """Dispatches one JSON-RPC call to a method; ``wallet`` is the /wallet/NAME of the URL."""

    def __init__(self, state: NodeState):
        self.state = state
        self.methods: dict[str, tuple[Callable, tuple[str, ...]]] = {}
        for name in dir(self):
            if name.startswith("rpc_"):
                fn = getattr(self, name)
                self.methods[name[4:]] = (fn, fn.__code__.co_varnames[1:fn.__code__.co_argcount])

    def call(self, method: str, params: Any, wallet: Optional[str]) -> Any:
        if not isinstance(method, str) or method not in self.methods:
            raise RpcError(RPC_METHOD_NOT_FOUND, "Method not found")
        fn, names = self.methods[method]
        names = tuple(n for n in names if n != "wallet")
        if params is None:
            params = []
        if isinstance(params, dict):
            unknown = set(params) - set(names)
            if unknown:
                raise RpcError(RPC_INVALID_PARAMETER, f"Unknown named parameter {sorted(unknown)[0]}")
            args = [params.get(n) for n in names]
        elif isinstance(params, list):
            if len(params) > len(names):
                raise RpcError(RPC_MISC_ERROR, f"{method} takes at most {len(names)} arguments")
            args = list(params) + [None] * (len(names) - len(params))
        else:
            raise RpcError(RPC_INVALID_REQUEST, "Params must be an array or object")
        kwargs = {"wallet": wallet} if "wallet" in fn.__code__.co_varnames[:fn.__code__.co_argcount] else {}
        with self.state.lock:
            self.state.sync()
            try:
                return fn(*args, **kwargs)
            except RpcError:
                raise
            except MsigvaultError as e:
                raise RpcError(RPC_MISC_ERROR, str(e)) from None

    # -- chain -------------------------------------------------------------------------------

    def _height_of(self, block_hash: str) -> int:
        height = self.state.heights.get(_txid(block_hash, "blockhash"))
        if height is None:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        return height

    def _header_info(self, height: int) -> dict:
        chain = self.state.chain
        raw = chain.block_raw(height)
        header = raw[:80]
        tip = self.state.height
        info = {
            "hash": chain.block_hash(height), "confirmations": tip - height + 1, "height": height,
            "version": int.from_bytes(header[:4], "little", signed=True),
            "versionHex": header[:4][::-1].hex(), "merkleroot": header[36:68][::-1].hex(),
            "time": chain.block_time(height), "mediantime": self._mtp(height),
            "nonce": int.from_bytes(header[76:80], "little"), "bits": header[72:76][::-1].hex(),
            "target": _target(header[72:76]), "difficulty": 4.656542373906925e-10,
            "chainwork": f"{2 * (height + 1):064x}", "nTx": len(self.state.block_txids[height]),
        }
        if height > 0:
            info["previousblockhash"] = chain.block_hash(height - 1)
        if height < tip:
            info["nextblockhash"] = chain.block_hash(height + 1)
        return info

    def _mtp(self, height: int) -> int:
        times = sorted(self.state.chain.block_time(h) for h in range(max(0, height - 10), height + 1))
        return times[len(times) // 2]

    def rpc_getblockcount(self):
        return self.state.height

    def rpc_getbestblockhash(self):
        return self.state.chain.tip

    def rpc_getblockhash(self, height):
        height = _int(height, "height")
        if not 0 <= height <= self.state.height:
            raise RpcError(RPC_INVALID_PARAMETER, "Block height out of range")
        return self.state.chain.block_hash(height)

    def rpc_getblockheader(self, blockhash, verbose=None):
        height = self._height_of(blockhash)
        if verbose is None or verbose:
            return self._header_info(height)
        return self.state.chain.block_raw(height)[:80].hex()

    def rpc_getblock(self, blockhash, verbosity=None):
        height = self._height_of(blockhash)
        verbosity = _verbosity(verbosity, 1)
        raw = self.state.chain.block_raw(height)
        if verbosity <= 0:
            return raw.hex()
        info = self._header_info(height)
        _header, txs = parse_block(raw)
        stripped = 80 + sum(sizes(t)[2] - sizes(t)[0] for t in txs) // 3 + (len(raw) - 80 - sum(len(t.raw) for t in txs))
        weight = sum(sizes(t)[2] for t in txs) + (len(raw) - sum(len(t.raw) for t in txs)) * 4
        info.update({"strippedsize": stripped, "size": len(raw), "weight": weight})
        if verbosity == 1:
            info["tx"] = [t.txid for t in txs]
        else:
            info["tx"] = [core_tx(t, self.state.network, fee=self.state.txs[t.txid].fee)
                          for t in txs]
        return info

    def rpc_getblockchaininfo(self):
        chain = self.state.chain
        header = chain.block_raw(self.state.height)[:80]
        return {
            "chain": "regtest", "blocks": self.state.height, "headers": self.state.height,
            "bestblockhash": chain.tip, "bits": header[72:76][::-1].hex(),
            "target": _target(header[72:76]), "difficulty": 4.656542373906925e-10,
            "time": chain.tip_time, "mediantime": chain.median_time_past,
            "verificationprogress": 1, "initialblockdownload": False,
            "chainwork": f"{2 * (self.state.height + 1):064x}", "size_on_disk": 0,
            "pruned": False, "warnings": [],
        }

    def rpc_getnetworkinfo(self):
        return {
            "version": NODE_VERSION, "subversion": SUBVERSION, "protocolversion": 70016,
            "localservices": "0000000000000409", "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED"],
            "localrelay": True, "timeoffset": 0, "networkactive": True, "connections": 0,
            "connections_in": 0, "connections_out": 0, "networks": [],
            "relayfee": btc(1000), "incrementalfee": btc(1000), "localaddresses": [], "warnings": [],
        }

    def rpc_getindexinfo(self, index_name=None):
        if not self.state.txindex:
            return {}
        best = {"synced": True, "best_block_height": self.state.height}
        info = {"txindex": dict(best), "txospenderindex": dict(best)}
        if index_name is not None:
            return {k: v for k, v in info.items() if k == index_name}
        return info

    def rpc_getmininginfo(self):
        return {"blocks": self.state.height, "difficulty": 4.656542373906925e-10,
                "networkhashps": 0, "pooledtx": len(self.state.mempool), "chain": "regtest",
                "warnings": []}

    def rpc_uptime(self):
        return 0

    # -- transactions ------------------------------------------------------------------------

    def rpc_getrawtransaction(self, txid, verbose=None, blockhash=None):
        txid = _txid(txid)
        rec = self.state.tx(txid)
        if blockhash is not None:
            if _txid(blockhash, "parameter 3") not in self.state.heights:
                raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Block hash not found")
            if rec is None or rec.place is None or rec.place.block_hash != blockhash.lower():
                raise RpcError(RPC_INVALID_ADDRESS_OR_KEY,
                               "No such transaction found in the provided block. Use gettransaction for wallet transactions.")
        if rec is None or (not self.state.txindex and blockhash is None and rec.place is not None):
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, NO_TX if self.state.txindex else NO_TX_WITHOUT_INDEX)
        if not _verbosity(verbose, 0):
            return rec.ptx.raw.hex()
        obj = core_tx(rec.ptx, self.state.network, rec.place, self.state.height,
                      fee=rec.fee if _verbosity(verbose, 0) >= 2 else None)
        if blockhash is not None:
            obj = {"in_active_chain": True, **obj}
        return obj

    def rpc_decoderawtransaction(self, hexstring, iswitness=None):
        try:
            ptx = parse_tx(_hex(hexstring, "hexstring"))
        except (ValueError, Exception) as e:  # noqa: BLE001
            if isinstance(e, RpcError):
                raise
            raise RpcError(RPC_DESERIALIZATION_ERROR, "TX decode failed") from None
        obj = core_tx(ptx, self.state.network)
        obj.pop("hex")
        return obj

    def rpc_gettxout(self, txid, n, include_mempool=None):
        txid, n = _txid(txid), _int(n, "n")
        key = (txid, n)
        use_mempool = True if include_mempool is None else bool(include_mempool)
        rec = self.state.txs.get(txid) or (self.state.mempool.get(txid) if use_mempool else None)
        if rec is None or n >= len(rec.ptx.tx.vout) or key in self.state.spender:
            return None
        if use_mempool and key in self.state.mempool_spender:
            return None
        out = self.state.outputs_of(rec)[n]
        confirmations = 0 if rec.place is None else self.state.height - rec.place.height + 1
        return {"bestblock": self.state.chain.tip, "confirmations": confirmations,
                "value": btc(out.amount), "scriptPubKey": core_script_pubkey(out.script, self.state.network),
                "coinbase": rec.ptx.is_coinbase}

    def rpc_getrawmempool(self, verbose=None, mempool_sequence=None):
        if not verbose:
            return list(self.state.mempool)
        return {txid: self._mempool_entry(rec) for txid, rec in self.state.mempool.items()}

    def rpc_getmempoolentry(self, txid):
        rec = self.state.mempool.get(_txid(txid))
        if rec is None:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
        return self._mempool_entry(rec)

    def _mempool_entry(self, rec) -> dict:
        _size, vsize, weight = sizes(rec.ptx)
        depends = [i.txid.hex() for i in rec.ptx.tx.vin if i.txid.hex() in self.state.mempool]
        spentby = [t for (p, _n), t in self.state.mempool_spender.items() if p == rec.ptx.txid]
        fee = btc(rec.fee)
        return {"vsize": vsize, "weight": weight, "time": rec.time, "height": self.state.height,
                "descendantcount": 1, "descendantsize": vsize, "ancestorcount": 1 + len(depends),
                "ancestorsize": vsize, "wtxid": rec.ptx.wtxid_hash[::-1].hex(),
                "fees": {"base": fee, "modified": fee, "ancestor": fee, "descendant": fee},
                "depends": depends, "spentby": spentby,
                "bip125-replaceable": self.state.replaceable(rec.ptx.txid),
                "unbroadcast": False}

    def rpc_getmempoolinfo(self):
        pool = self.state.mempool.values()
        total = sum(sizes(r.ptx)[1] for r in pool)
        return {"loaded": True, "size": len(self.state.mempool), "bytes": total, "usage": total,
                "total_fee": btc(sum(r.fee for r in pool)), "maxmempool": 300_000_000,
                "mempoolminfee": btc(1000), "minrelaytxfee": btc(1000),
                "incrementalrelayfee": btc(1000), "unbroadcastcount": 0, "fullrbf": True}

    def rpc_gettxspendingprevout(self, outputs, options=None):
        """Core 31: the mempool's spender, else (unless ``mempool_only``) the confirmed spender
        from -txospenderindex with its ``blockhash``; ``return_spending_tx`` adds its hex."""
        if not isinstance(outputs, list) or not outputs:
            raise RpcError(RPC_INVALID_PARAMETER, "Invalid parameter, outputs are missing")
        if options is not None and not isinstance(options, dict):
            raise RpcError(RPC_TYPE_ERROR, f"JSON value of type {_type(options)} is not of expected type object")
        options = options or {}
        for key in options:
            if key not in ("mempool_only", "return_spending_tx"):
                raise RpcError(RPC_TYPE_ERROR, f"Unexpected key {key}")
        mempool_only = bool(options.get("mempool_only", not self.state.txindex))
        with_tx = bool(options.get("return_spending_tx", False))
        return [self._spending(o, mempool_only, with_tx) for o in outputs]

    def _spending(self, o: Any, mempool_only: bool, with_tx: bool) -> dict:
        if not isinstance(o, dict) or "txid" not in o or "vout" not in o:
            raise RpcError(RPC_INVALID_PARAMETER, "Invalid parameter, missing txid or vout")
        txid, vout = _txid(o["txid"]), _int(o["vout"], "vout")
        if vout < 0:
            raise RpcError(RPC_INVALID_PARAMETER, "Invalid parameter, vout cannot be negative")
        entry: dict = {"txid": txid, "vout": vout}
        spender = self.state.mempool_spender.get((txid, vout))
        if spender is None and not mempool_only and self.state.txindex:
            spender = self.state.spender.get((txid, vout))
        if spender is None:
            return entry
        entry["spendingtxid"] = spender
        rec = self.state.tx(spender)
        if rec is not None and rec.place is not None:
            entry["blockhash"] = rec.place.block_hash
        if with_tx and rec is not None:
            entry["spendingtx"] = rec.ptx.raw.hex()
        return entry

    def rpc_sendrawtransaction(self, hexstring, maxfeerate=None, maxburnamount=None):
        raw = _decode_tx_hex(hexstring, "TX decode failed. Make sure the tx has at least one input.")
        limit = None if maxfeerate is None else _fee_rate_param(maxfeerate)
        try:
            rec = self.state.accept(raw, max_fee_rate=limit)
        except Reject as r:
            if r.kind == "known" and r.reason == "txn-already-in-mempool":
                return parse_tx(raw).txid
            raise _broadcast_error(r) from None
        return rec.ptx.txid

    def rpc_testmempoolaccept(self, rawtxs, maxfeerate=None):
        if not isinstance(rawtxs, list):
            raise RpcError(RPC_TYPE_ERROR, "JSON value of type string is not of expected type array")
        if not 1 <= len(rawtxs) <= 25:
            raise RpcError(RPC_INVALID_PARAMETER, "Array must contain between 1 and 25 transactions.")
        limit = None if maxfeerate is None else _fee_rate_param(maxfeerate)
        result = []
        for text in rawtxs:
            raw = _decode_tx_hex(text, f"TX decode failed: {text} Make sure the tx has at least one input.")
            ptx = parse_tx(raw)
            entry = {"txid": ptx.txid, "wtxid": ptx.wtxid_hash[::-1].hex()}
            try:
                rec = self.state.accept(raw, test_only=True, max_fee_rate=limit)
            except Reject as r:
                entry["allowed"] = False
                entry["reject-reason"] = r.reason if r.kind != "maxfee" else "max-fee-exceeded"
                if r.debug:
                    entry["reject-details"] = r.text
            else:
                vsize = sizes(ptx)[1]
                entry.update({"allowed": True, "vsize": vsize,
                              "fees": {"base": btc(rec.fee),
                                       "effective-feerate": btc(rec.fee * 1000 // vsize),
                                       "effective-includes": [entry["wtxid"]]}})
            result.append(entry)
        return result

    def rpc_estimatesmartfee(self, conf_target, estimate_mode=None):
        target = _int(conf_target, "conf_target")
        if not 1 <= target <= 1008:
            raise RpcError(RPC_INVALID_PARAMETER, "Invalid conf_target, must be between 1 and 1008")
        if estimate_mode is not None and str(estimate_mode).lower() not in ("unset", "economical", "conservative"):
            raise RpcError(RPC_INVALID_PARAMETER,
                           'Invalid estimate_mode parameter, must be one of: "unset", "economical", "conservative"')
        rate = self.state.fee_rate()
        if rate is None:
            return {"errors": [NO_FEE_ESTIMATE], "blocks": 0}
        return {"feerate": round(rate * 1000) / 100_000_000, "blocks": max(2, target)}

    # -- mining ----------------------------------------------------------------------------

    def rpc_generatetoaddress(self, nblocks, address, maxtries=None):
        n = _int(nblocks, "nblocks")
        if not 0 <= n <= MAX_GENERATE:
            raise RpcError(RPC_INVALID_PARAMETER, f"nblocks must be between 0 and {MAX_GENERATE}")
        script = self._address(address)
        return self.state.mine(n, script)

    def _address(self, address) -> bytes:
        if not isinstance(address, str):
            raise RpcError(RPC_TYPE_ERROR, "JSON value is not a string as expected")
        try:
            return script_from_address(address, self.state.network)
        except MsigvaultError:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address") from None

    # -- scantxoutset ------------------------------------------------------------------------

    def rpc_scantxoutset(self, action, scanobjects=None):
        if action in ("status", "abort"):
            return None if action == "status" else False
        if action != "start":
            raise RpcError(RPC_INVALID_PARAMETER, "Invalid action '%s'" % action)
        if not isinstance(scanobjects, list):
            raise RpcError(RPC_MISC_ERROR, "scanobjects argument is required for the start action")
        if len(scanobjects) > MAX_SCAN_OBJECTS:
            raise RpcError(RPC_INVALID_PARAMETER, f"at most {MAX_SCAN_OBJECTS} scan objects")
        wanted: dict[bytes, str] = {}
        for obj in scanobjects:
            desc, rng = (obj, None) if isinstance(obj, str) else (
                (obj.get("desc"), obj.get("range")) if isinstance(obj, dict) else (None, None))
            if not isinstance(desc, str):
                raise RpcError(RPC_INVALID_PARAMETER, "Scan object needs to be either a string or an object")
            for script, _index, _internal in expand_descriptor(desc, rng, self.state.network,
                                                               require_checksum=False):
                wanted.setdefault(script, desc)
        unspents, total = [], 0
        height = self.state.height
        for script in wanted:
            for txid, vout, out, place in self.state.unspent(script, include_mempool=False):
                rec = self.state.txs[txid]
                unspents.append({
                    "txid": txid, "vout": vout, "scriptPubKey": script.hex(),
                    "desc": script_desc(script, self.state.network), "amount": btc(out.amount),
                    "coinbase": rec.ptx.is_coinbase, "height": place.height,
                    "blockhash": place.block_hash, "confirmations": height - place.height + 1})
                total += out.amount
        return {"success": True, "txouts": sum(1 for _ in self.state.spender) or len(unspents),
                "height": height, "bestblock": self.state.chain.tip, "unspents": unspents,
                "total_amount": btc(total)}

    # -- wallets (watch-only descriptor wallets, kept in memory while the node runs) -------

    def _wallet(self, wallet: Optional[str]) -> Wallet:
        wallets = self.state.wallets
        if wallet is not None:
            if wallet not in wallets:
                raise RpcError(RPC_WALLET_NOT_FOUND, "Requested wallet does not exist or is not loaded")
            return wallets[wallet]
        if not wallets:
            raise RpcError(RPC_WALLET_NOT_FOUND,
                           "No wallet is loaded. Load a wallet using loadwallet or create a new one "
                           "with createwallet. (Note: A default wallet is no longer automatically created)")
        if len(wallets) > 1:
            raise RpcError(RPC_WALLET_NOT_SPECIFIED,
                           "Multiple wallets are loaded. Please select which wallet to use by "
                           "requesting the RPC through the /wallet/<walletname> URI path.")
        return next(iter(wallets.values()))

    def rpc_createwallet(self, wallet_name, disable_private_keys=None, blank=None, passphrase=None,
                         avoid_reuse=None, descriptors=None, load_on_startup=None, external_signer=None):
        if not isinstance(wallet_name, str):
            raise RpcError(RPC_TYPE_ERROR, "JSON value is not a string as expected")
        if not disable_private_keys:
            raise RpcError(RPC_WALLET_ERROR, "this regtest node only has watch-only wallets: "
                                             "pass disable_private_keys=true")
        if descriptors is False:
            raise RpcError(RPC_WALLET_ERROR, "Legacy wallets are not supported: use descriptors")
        if wallet_name in self.state.wallets:
            raise RpcError(RPC_WALLET_ALREADY_EXISTS,
                           f"Wallet file verification failed. Failed to create database path '{wallet_name}'. Database already exists.")
        self.state.wallets[wallet_name] = Wallet(wallet_name)
        return {"name": wallet_name, "warnings": []}

    def rpc_listwallets(self):
        return list(self.state.wallets)

    def rpc_unloadwallet(self, wallet_name=None, load_on_startup=None, wallet=None):
        w = self._wallet(wallet_name if wallet_name is not None else wallet)
        del self.state.wallets[w.name]
        return {"warnings": []}

    def rpc_getwalletinfo(self, wallet=None):
        w = self._wallet(wallet)
        return {"walletname": w.name, "walletversion": 169900, "format": "sqlite",
                "txcount": len(self._wallet_txids(w)), "keypoolsize": 0,
                "private_keys_enabled": False, "avoid_reuse": False, "scanning": False,
                "descriptors": True, "external_signer": False, "blank": True}

    def rpc_importdescriptors(self, requests, wallet=None):
        w = self._wallet(wallet)
        if not isinstance(requests, list):
            raise RpcError(RPC_TYPE_ERROR, "JSON value is not an array as expected")
        results = []
        for req in requests:
            try:
                if not isinstance(req, dict) or not isinstance(req.get("desc"), str):
                    raise RpcError(RPC_TYPE_ERROR, "Descriptor not found.")
                if "timestamp" not in req:
                    raise RpcError(RPC_TYPE_ERROR, "Missing required timestamp field for key")
                internal = bool(req.get("internal", False))
                found = expand_descriptor(req["desc"], req.get("range"), self.state.network,
                                          require_checksum=True)
                for script, index, _ in found:
                    w.scripts[script] = (req["desc"], index, internal)
                entry = {"desc": req["desc"], "timestamp": req["timestamp"],
                         "active": bool(req.get("active", False)), "internal": internal}
                if found and found[0][1] is not None:
                    entry["range"] = [min(i for _s, i, _c in found), max(i for _s, i, _c in found)]
                w.descriptors = [d for d in w.descriptors if d["desc"] != req["desc"]] + [entry]
                results.append({"success": True})
            except RpcError as e:
                results.append({"success": False, "error": {"code": e.code, "message": e.message}})
        return results

    def rpc_listdescriptors(self, private=None, wallet=None):
        w = self._wallet(wallet)
        return {"wallet_name": w.name, "descriptors": list(w.descriptors)}

    def rpc_getaddressinfo(self, address, wallet=None):
        w = self._wallet(wallet)
        script = self._address(address)
        entry = w.scripts.get(script)
        info = {"address": address, "scriptPubKey": script.hex(), "ismine": entry is not None,
                "solvable": entry is not None, "iswatchonly": False,
                "isscript": script[:1] in (b"\xa9",) or len(script) == 34,
                "iswitness": script[:1] in (b"\x00", b"\x51"), "ischange": bool(entry and entry[2]),
                "labels": []}
        if entry is not None:
            info["desc"] = entry[0]
        return info

    def rpc_listunspent(self, minconf=None, maxconf=None, addresses=None, include_unsafe=None,
                        query_options=None, wallet=None):
        w = self._wallet(wallet)
        minconf = 1 if minconf is None else _int(minconf, "minconf")
        maxconf = 9_999_999 if maxconf is None else _int(maxconf, "maxconf")
        scripts = list(w.scripts)
        if addresses:
            if not isinstance(addresses, list):
                raise RpcError(RPC_TYPE_ERROR, "JSON value is not an array as expected")
            scripts = [s for s in (self._address(a) for a in addresses) if s in w.scripts]
        out = []
        for script in scripts:
            for txid, vout, o, place in self.state.unspent(script):
                conf = 0 if place is None else self.state.height - place.height + 1
                if not minconf <= conf <= maxconf:
                    continue
                entry = {"txid": txid, "vout": vout}
                address = script_address(script, self.state.network)
                if address:
                    entry["address"] = address
                entry.update({"scriptPubKey": script.hex(), "amount": btc(o.amount),
                              "confirmations": conf, "spendable": False, "solvable": True,
                              "desc": w.scripts[script][0], "parent_descs": [w.scripts[script][0]],
                              "safe": conf > 0})
                out.append(entry)
        return out

    def rpc_gettransaction(self, txid, include_watchonly=None, verbose=None, wallet=None):
        w = self._wallet(wallet)
        rec = self.state.tx(_txid(txid))
        entries = self._wallet_entries(w, rec) if rec is not None else []
        if not entries:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
        common = {k: v for k, v in entries[0].items()
                  if k in ("confirmations", "blockhash", "blockheight", "blockindex", "blocktime",
                           "txid", "wtxid", "walletconflicts", "time", "timereceived", "bip125-replaceable")}
        details = [{k: v for k, v in e.items() if k not in common} for e in entries]
        amount = sum(d["amount"] for d in details)
        out = {"amount": round(amount, 8), **common, "details": details, "hex": rec.ptx.raw.hex()}
        if verbose:
            out["decoded"] = core_tx(rec.ptx, self.state.network)
        return out

    def _wallet_txids(self, w: Wallet) -> list:
        seen: dict[str, None] = {}
        for script in w.scripts:
            for rec in self.state.history(script):
                seen[rec.ptx.txid] = None
        return list(seen)

    def rpc_listtransactions(self, label=None, count=None, skip=None, include_watchonly=None, wallet=None):
        w = self._wallet(wallet)
        count = 10 if count is None else _int(count, "count")
        skip = 0 if skip is None else _int(skip, "skip")
        if count < 0:
            raise RpcError(RPC_INVALID_PARAMETER, "Negative count")
        if skip < 0:
            raise RpcError(RPC_INVALID_PARAMETER, "Negative from")
        entries = []
        for txid in self._wallet_txids(w):
            entries += self._wallet_entries(w, self.state.tx(txid))
        entries.sort(key=lambda e: (e.get("blockheight", 1 << 40), e.get("blockindex", 0), e["time"]))
        end = len(entries) - skip
        return entries[max(0, end - count):max(0, end)]

    def _wallet_entries(self, w: Wallet, rec) -> list:
        ptx = rec.ptx
        mine_in = 0
        if not ptx.is_coinbase:
            for inp in ptx.tx.vin:
                prev = self.state.prevout(inp.txid.hex(), inp.vout)
                if prev.script in w.scripts:
                    mine_in += prev.amount
        common = {"confirmations": 0 if rec.place is None else self.state.height - rec.place.height + 1}
        if rec.place is not None:
            common.update({"blockhash": rec.place.block_hash, "blockheight": rec.place.height,
                           "blockindex": rec.position, "blocktime": rec.place.block_time})
        common.update({"txid": ptx.txid, "wtxid": ptx.wtxid_hash[::-1].hex(), "walletconflicts": [],
                       "time": rec.place.block_time if rec.place else rec.time,
                       "timereceived": rec.place.block_time if rec.place else rec.time,
                       "bip125-replaceable": "yes" if rec.place is None and self.state.replaceable(ptx.txid)
                       else "no"})
        out = []
        for n, o in enumerate(ptx.tx.vout):
            script = o.script_pubkey.data
            address = script_address(script, self.state.network)
            if script in w.scripts:
                internal = w.scripts[script][2]
                category = "generate" if ptx.is_coinbase else "receive"
                entry = {"address": address, "parent_descs": [w.scripts[script][0]],
                         "category": category, "amount": btc(o.value), "label": "", "vout": n,
                         **({"internal": True} if internal else {})}
            elif mine_in:
                entry = {"address": address, "category": "send", "amount": -btc(o.value),
                         "label": "", "vout": n, "fee": -btc(rec.fee or 0), "abandoned": False}
            else:
                continue
            if entry["address"] is None:
                entry.pop("address")
            out.append({**entry, **common})
        return out


def _target(bits: bytes) -> str:
    n = int.from_bytes(bits, "little")
    exponent, mantissa = n >> 24, n & 0xFFFFFF
    return f"{mantissa << (8 * (exponent - 3)):064x}"


def _decode_tx_hex(text: Any, message: str) -> bytes:
    if not isinstance(text, str) or len(text) % 2 or not HEX.match(text):
        raise RpcError(RPC_DESERIALIZATION_ERROR, message)
    raw = bytes.fromhex(text)
    try:
        parse_tx(raw)
    except Exception:  # noqa: BLE001
        raise RpcError(RPC_DESERIALIZATION_ERROR, message) from None
    return raw


def _fee_rate_param(value: Any) -> float:
    """maxfeerate in BTC/kvB -> sat/vB (0 means no limit)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RpcError(RPC_TYPE_ERROR, "Amount is not a number or string")
    try:
        rate = float(value)
    except ValueError:
        raise RpcError(RPC_TYPE_ERROR, "Invalid amount") from None
    if rate < 0:
        raise RpcError(RPC_TYPE_ERROR, "Amount out of range")
    return rate * 100_000_000 / 1000


def _broadcast_error(r: Reject) -> RpcError:
    """Core's BroadcastTransaction -> JSONRPCTransactionError mapping."""
    if r.kind == "missing":
        return RpcError(RPC_VERIFY_ERROR, "Inputs missing or spent")
    if r.kind == "known":
        return RpcError(RPC_VERIFY_ALREADY_IN_UTXO_SET, "Transaction outputs already in utxo set")
    if r.kind == "maxfee":
        return RpcError(RPC_VERIFY_ERROR, "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")
    if r.kind == "decode":
        return RpcError(RPC_DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input.")
    return RpcError(RPC_VERIFY_REJECTED, r.text)


def expand_descriptor(desc: str, rng: Any, network, *, require_checksum: bool) -> list:
    """(scriptPubKey, index or None, is_change) for ``addr()``, ``raw()`` and vault descriptors."""
    from ..policy.checksum import descriptor_checksum

    body, sep, given = desc.partition("#")
    if not sep and require_checksum:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Missing checksum")
    if len(body) > 100_000:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "descriptor is too long")
    try:
        computed = descriptor_checksum(body)
    except MsigvaultError as e:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, str(e)) from None
    if sep and given != computed:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY,
                       f"Provided checksum '{given}' does not match computed checksum '{computed}'")
    if body.startswith("addr(") and body.endswith(")"):
        try:
            return [(script_from_address(body[5:-1], network), None, False)]
        except MsigvaultError:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, f"Address is not valid") from None
    if body.startswith("raw(") and body.endswith(")"):
        return [(_hex(body[4:-1], "raw"), None, False)]
    start, end = _range(rng)
    from ..policy.vault import Vault

    try:
        vault = Vault.from_descriptor(body, network=network, require_checksum=False)
    except MsigvaultError as e:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, f"{e}") from None
    branches = [0, 1] if "<0;1>" in body else ([1] if "/1/*" in body else [0])
    return [(vault.derive_branch(b, i).script_pubkey, i, b == 1)
            for b in branches for i in range(start, end + 1)]


def _range(rng: Any) -> tuple[int, int]:
    if rng is None:
        return 0, DEFAULT_RANGE - 1
    if isinstance(rng, int) and not isinstance(rng, bool):
        start, end = 0, rng
    elif isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in rng):
        start, end = rng
    else:
        raise RpcError(RPC_INVALID_PARAMETER, "Range must be specified as end or as [begin,end]")
    if start < 0 or end < start:
        raise RpcError(RPC_INVALID_PARAMETER, "Range should be greater or equal than 0")
    if end - start >= MAX_DESCRIPTOR_RANGE:
        raise RpcError(RPC_INVALID_PARAMETER, "Range is too large")
    return start, end


def default_payout() -> bytes:
    return ANYONE_CAN_SPEND_SCRIPT_PUBKEY


def now() -> int:
    return int(_time.time())
