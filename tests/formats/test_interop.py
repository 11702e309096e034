"""Our exports read back in other projects' Python parsers: embit (Specter's library) and BDK
(rust-miniscript, via bdkpython). Both must derive the vault's own addresses from what we wrote.

BDK refuses ``sortedmulti_a``, so sorted taproot vaults are checked with embit only. No Python
parser exists for Coldcard's or Caravan's files (firmware, TypeScript/Rust): those are checked
against the projects' own sample files in test_samples.py instead.
"""

import json

import bdkpython as bdk
import pytest
from embit.descriptor import Descriptor as EmbitDescriptor
from embit.networks import NETWORKS

from msigvault.formats import export_vault
from msigvault.formats.sparrow import paragraphs
from msigvault.policy import SCRIPT_TYPES

EMBIT_REGTEST = NETWORKS["regtest"]


def embit_addresses(desc, branch=None, count=4):
    d = EmbitDescriptor.from_string(desc)
    if branch is None:
        return [d.derive(i).address(EMBIT_REGTEST) for i in range(count)]
    return [d.derive(i, branch_index=branch).address(EMBIT_REGTEST) for i in range(count)]


def bdk_addresses(desc, count=4):
    d = bdk.Descriptor(desc, bdk.NetworkKind.TEST)
    if d.is_multipath():
        d = d.to_single_descriptors()[0]
    return [str(d.derive_address(i, bdk.Network.REGTEST)) for i in range(count)]


def exported_descriptors(vault):
    """(descriptor text, branch it covers) for every descriptor any of our formats writes."""
    out = []
    out.append((export_vault(vault, "descriptor").strip(), None))
    recv, change = export_vault(vault, "descriptor", form="pair").split()
    out += [(recv, 0), (change, 1)]
    for entry in json.loads(export_vault(vault, "descriptor", form="listdescriptors"))["descriptors"]:
        out.append((entry["desc"], 1 if entry["internal"] else 0))
    for entry in json.loads(export_vault(vault, "descriptor", form="importdescriptors")):
        out.append((entry["desc"], 1 if entry["internal"] else 0))
    sparrow = paragraphs(export_vault(vault, "sparrow"))
    out += [(sparrow[0], None), (sparrow[1], 0), (sparrow[2], 1)]
    out.append((json.loads(export_vault(vault, "specter"))["descriptor"], 0))
    # BSMS: expand the template as BIP129 says, one descriptor per path restriction
    lines = export_vault(vault, "bsms").split("\n")
    assert lines[2] == "/0/*,/1/*"
    out += [(lines[1].replace("/**", "/0/*"), 0), (lines[1].replace("/**", "/1/*"), 1)]
    # BIP388: substitute the keys and /** as the BIP's "Descriptor derivation" section says
    if vault.script != "tr":
        policy = json.loads(export_vault(vault, "bip388"))
        desc = policy["descriptor_template"].replace("/**", "/<0;1>/*")
        for i in reversed(range(len(policy["keys_info"]))):
            desc = desc.replace(f"@{i}", policy["keys_info"][i])
        out.append((desc, None))
    return out


@pytest.mark.parametrize("script", SCRIPT_TYPES)
@pytest.mark.parametrize("is_sorted", [True, False], ids=["sorted", "unsorted"])
def test_embit_and_bdk_read_our_descriptors(script, is_sorted, make_vault):
    vault = make_vault(script, 2, 3, sorted=is_sorted, label=f"interop-{script}")
    receive, change = vault.addresses(0, 4), vault.addresses(0, 4, change=True)
    for desc, branch in exported_descriptors(vault):
        want = change if branch == 1 else receive
        assert embit_addresses(desc, 0 if branch is None else None) == want, desc[:40]
        if branch is None:
            assert embit_addresses(desc, 1) == change
        if not (script == "tr" and is_sorted):
            assert bdk_addresses(desc) == want  # BDK also verifies the checksum when there is one


def test_bdk_sees_the_same_policy(make_vault):
    vault = make_vault("wsh", 2, 3)
    recv, change = export_vault(vault, "descriptor", form="pair").split()
    d = bdk.Descriptor(recv, bdk.NetworkKind.TEST)
    assert d.max_weight_to_satisfy() > 0
    assert d.desc_type() == bdk.DescriptorType.WSH_SORTED_MULTI
    tampered = recv[:-1] + ("q" if recv[-1] != "q" else "p")
    with pytest.raises(Exception):
        bdk.Descriptor(tampered, bdk.NetworkKind.TEST)  # BDK checks our checksums too
