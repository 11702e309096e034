"""Two RegtestBackends on one RegtestChain (two coordinators in one process, as the coordinator's
concurrency tests run them) share one node state: one mempool, one address index, one lock.

Each used to build its own NodeState, so threads of the two backends read and wrote the chain's
index at the same moment (a coordinator test failed under load with IndexErrors from inside it).
"""

import threading

from msigvault.backends.regtest import RegtestBackend
from msigvault.regtest import RegtestChain


def test_backends_on_one_chain_share_one_state_and_lock():
    chain = RegtestChain()
    first, second = RegtestBackend(chain), RegtestBackend(chain)
    assert first.state is second.state and first.state.lock is second.state.lock
    assert RegtestBackend(RegtestChain()).state is not first.state  # another chain, another node


def test_concurrent_reads_and_blocks_through_two_backends():
    chain = RegtestChain()
    first, second = RegtestBackend(chain), RegtestBackend(chain)
    script = bytes.fromhex("0014") + bytes(range(20))
    errors: list = []

    def mine():
        try:
            for _ in range(30):
                with first.state.lock:  # as first's broadcast mines: under its node's lock
                    chain.mine(1, to=script)
        except Exception as e:  # noqa: BLE001  (collected and reported below)
            errors.append(e)

    def read():
        try:
            for _ in range(60):
                second.tip()
                second.utxos([script])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=mine)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert second.tip().height == first.tip().height == chain.height

