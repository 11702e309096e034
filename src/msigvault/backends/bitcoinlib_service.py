"""An adapter over bitcoinlib's ``Service``: any provider bitcoinlib knows, behind our interface.

``bitcoinlib:PROVIDER`` names a provider from bitcoinlib's ``providers.json`` (in
``$BCL_DATA_DIR``, default ``~/.bitcoinlib``): a provider *name* such as ``blockstream.testnet``
or a provider *type* such as ``blockstream`` or ``bitcoind``. bitcoinlib returns ``False`` and
records errors instead of raising; the adapter turns both into :class:`BackendError`.
bitcoinlib asks per address, so this adapter is the slowest backend for scanning.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..address import address_from_script
from ..network import Network
from .base import (
    Backend,
    BackendError,
    BackendProtocolError,
    BackendServerError,
    BackendUnavailable,
    BroadcastRejected,
    ChainUtxo,
    FEE_TARGETS,
    FeeEstimates,
    HistoryItem,
    Tip,
    TxNotFound,
    check_txid,
    txid_of,
)

BITCOINLIB_NETWORKS = {"mainnet": "bitcoin", "testnet": "testnet", "signet": "signet",
                       "regtest": "regtest"}


class BitcoinlibBackend(Backend):
    """bitcoinlib's Service restricted to one provider."""

    name = "bitcoinlib"

    def __init__(self, provider: str, network: "Network | str", *, timeout: int = 10):
        self.network = Network.from_name(network)
        self.where = f"bitcoinlib provider {provider}"
        self.round_trips = 0
        try:
            from bitcoinlib.services.services import Service, ServiceError
        except ImportError:
            raise BackendUnavailable("bitcoinlib is not installed: pip install 'msigvault[online]'",
                                     where=self.where, what="bitcoinlib") from None
        self._service_error = ServiceError
        net = BITCOINLIB_NETWORKS[self.network.name]
        try:
            try:
                self.service = Service(network=net, provider_name=provider, timeout=timeout,
                                       cache_uri="", strict=True)
            except ServiceError:
                self.service = Service(network=net, providers=[provider], timeout=timeout,
                                       cache_uri="", strict=True)
        except ServiceError as e:
            raise BackendError(f"bitcoinlib cannot use provider {provider!r} for {net}: {e}",
                               where=self.where, what="bitcoinlib set-up") from None
        except Exception as e:  # noqa: BLE001  (bitcoinlib raises bare exceptions from providers)
            raise BackendUnavailable(f"bitcoinlib could not reach the provider ({e})",
                                     where=self.where, what="bitcoinlib set-up") from None

    def _run(self, what: str, fn, *args) -> Any:
        self.round_trips += 1
        try:
            result = fn(*args)
        except self._service_error as e:
            raise BackendServerError(f"bitcoinlib: {e}", where=self.where, what=what) from None
        except Exception as e:  # noqa: BLE001
            raise BackendUnavailable(f"bitcoinlib failed ({type(e).__name__}: {str(e)[:160]})",
                                     where=self.where, what=what) from None
        if result is False or result is None:
            errors = "; ".join(f"{k}: {v}" for k, v in (self.service.errors or {}).items())
            raise BackendServerError(f"bitcoinlib got no answer ({errors or 'no detail'})",
                                     where=self.where, what=what)
        return result

    def _address(self, script: bytes) -> str:
        return address_from_script(bytes(script), self.network)

    def genesis_hash(self) -> str:
        block = self._run("getblock", self.service.getblock, 0, False)
        return check_txid(block["block_hash"] if isinstance(block, dict) else block.block_hash.hex())

    def tip(self) -> Tip:
        height = self._run("blockcount", self.service.blockcount)
        block = self._run("getblock", self.service.getblock, int(height), False)
        try:
            if isinstance(block, dict):
                return Tip(int(height), check_txid(block["block_hash"]), int(block["time"]))
            return Tip(int(height), block.block_hash.hex(), int(block.time))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BackendProtocolError("malformed block from bitcoinlib", where=self.where,
                                       what="tip") from None

    def fee_estimates(self, targets: Sequence[int] = FEE_TARGETS) -> FeeEstimates:
        rates = {}
        for t in targets:
            per_kb = self._run("estimatefee", self.service.estimatefee, t)
            rates[t] = float(per_kb) / 1000
        return FeeEstimates(rates)

    def _tip_height(self) -> int:
        return int(self._run("blockcount", self.service.blockcount))

    def utxos(self, script_pubkeys: Sequence[bytes]) -> list[ChainUtxo]:
        out = []
        tip = self._tip_height()
        for script in dict.fromkeys(map(bytes, script_pubkeys)):
            rows = self._run("getutxos", self.service.getutxos, self._address(script))
            try:
                for r in rows:
                    # bitcoinlib's confirmation counts are off by one for some providers, and its
                    # bitcoind client puts unconfirmed coins at tip + 1: trust heights up to the tip
                    out.append(ChainUtxo(check_txid(r["txid"]), int(r["output_n"]), int(r["value"]),
                                         script, _height(r.get("block_height"), tip)))
            except (KeyError, TypeError, ValueError, AttributeError):
                raise BackendProtocolError("malformed UTXO from bitcoinlib", where=self.where,
                                           what="getutxos") from None
        return out

    def history(self, script_pubkeys: Sequence[bytes]) -> dict[bytes, tuple[HistoryItem, ...]]:
        out = {}
        tip = self._tip_height()
        for script in dict.fromkeys(map(bytes, script_pubkeys)):
            address = self._address(script)
            self.round_trips += 1
            try:
                txs = self.service.gettransactions(address)
            except Exception as e:  # noqa: BLE001
                raise BackendUnavailable(f"bitcoinlib failed ({str(e)[:160]})", where=self.where,
                                         what="gettransactions") from None
            if txs is False:
                raise BackendServerError("bitcoinlib got no history", where=self.where,
                                         what="gettransactions")
            out[script] = tuple(HistoryItem(t.txid, _height(t.block_height, tip)) for t in txs)
        return out

    def _raw_tx(self, txid: str) -> bytes:
        try:
            text = self._run("getrawtransaction", self.service.getrawtransaction, txid)
        except BackendServerError:
            raise TxNotFound(f"bitcoinlib's provider has no transaction {txid}",
                             where=self.where, what="getrawtransaction") from None
        try:
            return bytes.fromhex(text)
        except (TypeError, ValueError):
            raise BackendProtocolError("bitcoinlib returned no hex", where=self.where,
                                       what="getrawtransaction") from None

    def broadcast(self, raw_tx: bytes) -> str:
        txid = txid_of(raw_tx)
        self.round_trips += 1
        try:
            result = self.service.sendrawtransaction(bytes(raw_tx).hex())
        except self._service_error:
            result = False  # bitcoinlib recorded each provider's answer in service.errors
        except Exception as e:  # noqa: BLE001
            raise BackendUnavailable(f"bitcoinlib failed ({str(e)[:160]})", where=self.where,
                                     what="broadcast") from None
        if not result:
            errors = "; ".join(str(v) for v in (self.service.errors or {}).values())
            raise BroadcastRejected(errors or "the provider refused it (no reason given)",
                                    where=self.where, txid=txid)
        return txid


def _height(value, tip: int):
    """A block height bitcoinlib reported, or None (unconfirmed) if absent or above the tip."""
    if value is None:
        return None
    height = int(value)
    return height if 0 <= height <= tip else None
