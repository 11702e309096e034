"""Chain backends: Bitcoin Core RPC, Esplora, Electrum, bitcoinlib services and RegtestChain
(extra ``online``).

Nothing here is imported by the offline keyholder's modules. Typical use::

    from msigvault.backends import open_backend, scan_vault

    with open_backend("core+http://user:pass@127.0.0.1:18443", vault.network) as backend:
        result = scan_vault(vault, backend)
        result.balance.confirmed, result.utxos, result.next_receive_index
"""

from .base import (
    AcceptResult,
    Backend,
    BackendAuthError,
    BackendDisagreement,
    BackendError,
    BackendNetworkMismatch,
    BackendProtocolError,
    BackendServerError,
    BackendTimeout,
    BackendUnavailable,
    BackendUnsupported,
    BroadcastRejected,
    ChainUtxo,
    FeeEstimates,
    HistoryItem,
    RetryPolicy,
    Tip,
    TxNotFound,
)
from .url import BackendSpec, BackendUrlError, open_backend, parse_backend_url


def __getattr__(name):
    if name in ("scan_vault", "ScanResult", "Balance", "fetch_spendable", "cross_check"):
        from . import scan

        return getattr(scan, name)
    raise AttributeError(name)


__all__ = [
    "AcceptResult", "Backend", "BackendAuthError", "BackendDisagreement", "BackendError",
    "BackendNetworkMismatch", "BackendProtocolError", "BackendServerError", "BackendSpec",
    "BackendTimeout", "BackendUnavailable", "BackendUnsupported", "BackendUrlError",
    "BroadcastRejected", "ChainUtxo", "FeeEstimates", "HistoryItem", "RetryPolicy", "Tip",
    "TxNotFound", "open_backend", "parse_backend_url", "scan_vault", "ScanResult", "Balance",
    "fetch_spendable", "cross_check",
]
