"""export -> import gives the same Vault, for every format and every script type it can express.

Formats that cannot express a vault say so with a FormatError naming the format to use instead:
Coldcard's text file, Caravan and BIP388 have no taproot vault; Coldcard and Caravan have no
unsorted ``multi``.
"""

import json

import pytest

from msigvault import Network
from msigvault.formats import FORMATS, FormatError, ImportedVault, detect_format, export_vault, import_vault
from msigvault.policy import SCRIPT_TYPES

UNSUPPORTED = {
    ("coldcard", "tr"), ("caravan", "tr"), ("bip388", "tr"), ("electrum", "tr"),
}
SORTED_ONLY = {"coldcard", "caravan", "electrum"}
NAMED = {"coldcard", "caravan", "specter", "bip388"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("script", SCRIPT_TYPES)
@pytest.mark.parametrize("is_sorted", [True, False], ids=["sorted", "unsorted"])
def test_roundtrip(fmt, script, is_sorted, make_vault):
    vault = make_vault(script, 2, 3, sorted=is_sorted)
    if (fmt, script) in UNSUPPORTED or (not is_sorted and fmt in SORTED_ONLY):
        with pytest.raises(FormatError, match=fmt):
            export_vault(vault, fmt, name="Treasury")
        return
    text = export_vault(vault, fmt, name="Treasury")
    assert isinstance(text, str) and text.endswith("\n")
    got = import_vault(text, network="regtest")
    assert isinstance(got, ImportedVault)
    assert got.format == fmt == detect_format(text)
    assert got.vault == vault and got.vault.same_policy(vault)
    assert got.vault.address(7) == vault.address(7) and got.vault.change_address(3) == vault.change_address(3)
    if fmt in NAMED:
        assert got.name == "Treasury"
    # the explicit format gives the same result
    assert import_vault(text, network="regtest", fmt=fmt).vault == vault


@pytest.mark.parametrize("script", SCRIPT_TYPES)
def test_roundtrip_mainnet_without_network(script, make_vault):
    vault = make_vault(script, 3, 5, network=Network.MAINNET, label="main")
    for fmt in FORMATS:
        if (fmt, script) in UNSUPPORTED:
            continue
        got = import_vault(export_vault(vault, fmt))  # xpub keys: the network is known
        assert got.vault == vault, fmt


@pytest.mark.parametrize("net", ["testnet", "signet", "regtest"])
def test_caravan_carries_its_network(net, make_vault):
    vault = make_vault("wsh", network=Network.from_name(net), label=net)
    text = export_vault(vault, "caravan")
    assert json.loads(text)["network"] == net
    assert import_vault(text).vault == vault  # no network= needed: the file says it


@pytest.mark.parametrize("form", ["multipath", "pair", "listdescriptors", "importdescriptors"])
@pytest.mark.parametrize("script", SCRIPT_TYPES)
def test_descriptor_forms(form, script, make_vault):
    vault = make_vault(script)
    text = export_vault(vault, "descriptor", form=form, name="vault-a")
    got = import_vault(text, network="regtest")
    assert got.format == "descriptor" and got.vault == vault and got.warnings == ()
    if form == "listdescriptors":
        assert got.name == "vault-a"


def test_importdescriptors_is_what_bitcoin_core_takes(make_vault):
    vault = make_vault("wsh")
    entries = json.loads(export_vault(vault, "descriptor", form="importdescriptors", timestamp="now"))
    assert [e["internal"] for e in entries] == [False, True]
    assert [e["desc"] for e in entries] == list(vault.descriptors())
    assert all(e["active"] is True and e["timestamp"] == "now" and e["range"] == [0, 999] for e in entries)


def test_bip388_text_form(make_vault):
    vault = make_vault("sh-wsh")
    text = export_vault(vault, "bip388", form="text")
    assert text.startswith("Descriptor template: sh(wsh(sortedmulti(2,@0/**,@1/**,@2/**)))\n")
    assert import_vault(text, network="regtest").vault == vault


@pytest.mark.parametrize("token", ["a54044308ceac9b7", "108a2360adb302774eb521daebbeda5e", 11907592390080907703])
@pytest.mark.parametrize("script", SCRIPT_TYPES)
def test_bsms_encrypted_roundtrip(token, script, make_vault):
    vault = make_vault(script)
    text = export_vault(vault, "bsms", token=token)
    assert set(text.strip()) <= set("0123456789abcdef")
    got = import_vault(text, network="regtest", token=token)
    assert got.format == "bsms" and got.vault == vault


@pytest.mark.parametrize("n", [1, 15])
def test_sizes(n, make_vault):
    vault = make_vault("sh", 1, n)
    for fmt in FORMATS:
        assert import_vault(export_vault(vault, fmt), network="regtest").vault == vault


def test_large_taproot_and_wsh(make_vault):
    for script, n in (("wsh", 20), ("tr", 25)):
        vault = make_vault(script, 11, n)
        for fmt in ("descriptor", "bsms", "specter", "sparrow"):
            assert import_vault(export_vault(vault, fmt), network="regtest").vault == vault


def test_coldcard_refuses_more_than_15(make_vault):
    with pytest.raises(FormatError, match="at most 15"):
        export_vault(make_vault("wsh", 2, 16), "coldcard")


def test_unknown_format_and_option(make_vault):
    vault = make_vault()
    with pytest.raises(FormatError, match="unknown format"):
        export_vault(vault, "electrum-json")
    with pytest.raises(FormatError, match="unknown option"):
        export_vault(vault, "coldcard", token="00")
    with pytest.raises(FormatError, match="unknown form"):
        export_vault(vault, "descriptor", form="xml")
    with pytest.raises(FormatError, match="unknown format"):
        import_vault(export_vault(vault, "coldcard"), fmt="wasabi")
    with pytest.raises(FormatError, match="not valid JSON"):
        import_vault(export_vault(vault, "coldcard"), fmt="electrum")
    with pytest.raises(FormatError, match="TOKEN only applies"):
        import_vault(export_vault(vault, "coldcard"), network="regtest", token="a54044308ceac9b7")


def test_export_names_are_checked(make_vault):
    vault = make_vault()
    with pytest.raises(FormatError, match="at most 20"):
        export_vault(vault, "coldcard", name="x" * 21)
    with pytest.raises(FormatError, match="one line"):
        export_vault(vault, "caravan", name="two\nlines")
    with pytest.raises(FormatError, match="empty"):
        export_vault(vault, "specter", name="  ")
