"""The package's public names: lazy at run time, all visible to type checkers; ScriptType."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import msigvault
from msigvault import ScriptType, Vault
from msigvault.errors import PolicyError
from msigvault.network import Network
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile, load_vault_file

INIT = Path(msigvault.__file__)


def _type_checking_names() -> "set[str]":
    tree = ast.parse(INIT.read_text())
    names: "set[str]" = set()
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module.startswith("msigvault"):
                    names.update((a.asname or a.name) for a in stmt.names)
    return names


def test_type_checking_block_lists_every_export():
    assert _type_checking_names() == set(msigvault._EXPORTS)


def test_type_checking_block_imports_from_the_exporting_module():
    tree = ast.parse(INIT.read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    for stmt in block.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module.startswith("msigvault"):
            for alias in stmt.names:
                assert msigvault._EXPORTS[alias.name] == stmt.module


@pytest.mark.parametrize("name", sorted(msigvault._EXPORTS))
def test_every_export_resolves(name):
    value = getattr(msigvault, name)
    assert getattr(value, "__module__", None) == msigvault._EXPORTS[name]


def test_import_stays_lazy():
    code = "import sys, msigvault; print(sorted(m for m in sys.modules if m.startswith('msigvault')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['msigvault']"


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        msigvault.Nope  # noqa: B018


# -- ScriptType ----------------------------------------------------------------------------------

def test_script_type_is_its_string():
    assert ScriptType.WSH == "wsh" and ScriptType.SH_WSH == "sh-wsh"
    assert str(ScriptType.TR) == "tr" and f"{ScriptType.SH:>4}" == "  sh" and "%s" % ScriptType.WSH == "wsh"
    assert json.dumps([ScriptType.SH_WSH]) == '["sh-wsh"]'
    assert {"wsh": 1}[ScriptType.WSH] == 1 and {ScriptType.TR: 2}["tr"] == 2
    assert [t.value for t in ScriptType] == ["sh", "sh-wsh", "wsh", "tr"]
    assert [t.max_keys for t in ScriptType] == [15, 20, 20, 999]


@pytest.mark.parametrize("bad", ["WSH", "p2wsh", "", None, 2, b"wsh"])
def test_script_type_parse_refuses(bad):
    with pytest.raises(PolicyError) as e:
        ScriptType.parse(bad, argument="script")
    assert e.value.field == "script" and e.value.code == "policy.invalid"


def _keys(script="wsh"):
    return [TestKeyholder.from_label(n).cosigner(script) for n in ("alice", "bob", "carol")]


@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh", "tr"])
def test_vault_script_is_normalised_to_the_enum(script):
    keys = _keys(script)
    for vault in (Vault.multisig(2, keys, script=script, network=Network.REGTEST),
                  Vault(2, tuple(keys), script, True, Network.REGTEST)):
        assert type(vault.script) is ScriptType and vault.script == script
        assert type(vault.derive(0).script_type) is ScriptType
    assert Vault.multisig(2, keys, script=ScriptType(script), network=Network.REGTEST) == vault
    assert Vault.from_descriptor(vault.descriptor(), network=Network.REGTEST).script is ScriptType(script)


# policy ids of the alice/bob/carol 2-of-3 vaults, computed before ScriptType existed: the
# enum must not change what registrations sign
POLICY_IDS = {
    "sh": "0a6e1e6c632d3bd221340a67b3fd1169ba81df1f55b438afbeccf853b1362651",
    "sh-wsh": "66bf28a3ec3216927b47f76315d1a7543816ab00f5e38a1f6f0e629e0beaccd8",
    "wsh": "b08ca28703f33526f27e13dda2e0c86b876c8ba63c31011da48be0d24f6f8a36",
    "tr": "bf5cd3d7d85754e1ae018680396ae0c0fba6e792c14566c6c0065352b2f1eefb",
}


@pytest.mark.parametrize("script", sorted(POLICY_IDS))
def test_policy_id_unchanged(script):
    assert Vault.multisig(2, _keys(script), script=script, network=Network.REGTEST).policy_id == POLICY_IDS[script]


def test_vault_file_and_json_keep_the_plain_string(tmp_path):
    from msigvault.cli.vaults import vault_summary

    vault = Vault.multisig(2, _keys(), network=Network.REGTEST)
    VaultFile(vault, "v").save(tmp_path / "v.json")
    loaded = load_vault_file(tmp_path / "v.json")
    assert loaded.vault.script is ScriptType.WSH
    text = json.dumps(vault_summary(loaded))
    assert '"script": "wsh"' in text and "ScriptType" not in text
    assert str(vault) == "2-of-3 wsh vault on regtest"
