"""Addresses: our table-driven bech32/bech32m encoder against embit's reference implementation
(official addresses are covered by the BIP341 wallet vectors and the BDK cross-check)."""

import pytest
from embit import bech32
from hypothesis import given, strategies as st

from msigvault.address import _segwit_encode, address_from_script, script_from_address
from msigvault.errors import InvalidAddress, NetworkMismatch
from msigvault.network import ALL_NETWORKS, Network


@given(st.sampled_from([(0, 20), (0, 32), (1, 32), (1, 2), (16, 40)]).flatmap(
           lambda vn: st.tuples(st.just(vn[0]), st.binary(min_size=vn[1], max_size=vn[1]))),
       st.sampled_from(ALL_NETWORKS))
def test_segwit_encoding_matches_reference(version_program, network):
    version, program = version_program
    address = _segwit_encode(network.bech32_hrp, version, program)
    assert address == bech32.encode(network.bech32_hrp, version, program)
    spk = bytes([0 if version == 0 else 0x50 + version, len(program)]) + program
    assert address_from_script(spk, network) == address
    assert script_from_address(address, network) == spk


def test_wrong_network_and_garbage():
    spk = b"\x00\x14" + bytes(20)
    main = address_from_script(spk, Network.MAINNET)
    with pytest.raises(NetworkMismatch, match="mainnet"):
        script_from_address(main, Network.REGTEST)
    with pytest.raises(InvalidAddress):
        script_from_address(main[:-1] + ("q" if main[-1] != "q" else "p"), Network.MAINNET)
    with pytest.raises(InvalidAddress):
        address_from_script(b"\x51", Network.MAINNET)
