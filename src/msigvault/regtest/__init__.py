"""In-process regtest chain validated by Bitcoin Core's libbitcoinkernel (the ``regtest`` extra).

Typical use::

    from msigvault.regtest import RegtestChain

    with RegtestChain() as chain:
        [utxo] = chain.fund(vault_address, [100_000])  # confirmed, with utxo.prev_tx
        chain.submit([signed_tx])  # mined, or BlockRejected with Core's reason
"""

from .chain import (
    ANYONE_CAN_SPEND_SCRIPT_PUBKEY,
    ANYONE_CAN_SPEND_WITNESS_SCRIPT,
    BlockRejected,
    RegtestChain,
    spend_anyone_can_spend,
)

__all__ = [
    "ANYONE_CAN_SPEND_SCRIPT_PUBKEY",
    "ANYONE_CAN_SPEND_WITNESS_SCRIPT",
    "BlockRejected",
    "RegtestChain",
    "spend_anyone_can_spend",
]
