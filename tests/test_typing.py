"""The public modules type-check under mypy --strict, and a user's checker sees real types.

`make test` (CI) runs mypy on pyproject.toml's [tool.mypy] files before pytest; these tests
check that configuration and what a library user's own mypy run sees.
"""

import os
import sys
import tomllib
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]

PUBLIC = ["__init__.py", "errors.py", "network.py", "amounts.py", "types.py", "scripttypes.py", "address.py",
          "script.py", "vaultfile.py", "keys", "policy/vault.py", "policy/registration.py", "psbt",
          "transport/files.py"]


def test_config_is_strict_and_lists_the_public_modules():
    assert CONFIG["strict"] is True
    assert set(CONFIG["files"]) >= {f"src/msigvault/{p}" for p in PUBLIC}
    for path in CONFIG["files"]:
        assert (ROOT / path).exists(), path


def test_only_third_party_modules_are_silenced():
    for override in CONFIG.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not any(m.startswith("msigvault") for m in modules), modules
        assert not override.get("ignore_errors"), override


def _mypy(where: Path, *args: str) -> "tuple[str, int]":
    cwd = os.getcwd()
    os.chdir(where)
    try:
        out, err, status = api.run(["--cache-dir", str(ROOT / ".mypy_cache"), *args])
    finally:
        os.chdir(cwd)
    return out + err, status


def test_public_modules_pass_strict():
    out, status = _mypy(ROOT)
    assert status == 0, out


def _user(tmp_path: Path, code: str) -> "tuple[str, int]":
    """mypy --strict on ``code`` in a user's own project (msigvault as an installed package)."""
    (tmp_path / "user.py").write_text(code)
    return _mypy(tmp_path, "--strict", "--python-executable", sys.executable, "user.py")


def test_a_user_sees_the_lazy_exports_typed(tmp_path):
    # through msigvault.__getattr__ alone every name would be Any and none of these would fail
    code = (
        "from msigvault import ScriptType, Vault\n"
        "a: int = Vault\n"
        "b: int = ScriptType.WSH\n"
        "def f(v: Vault) -> None:\n"
        "    c: int = v.script\n"
    )
    out, status = _user(tmp_path, code)
    assert status == 1
    assert 'type "type[Vault]"' in out and '"ScriptType"' in out and out.count("error:") == 3, out


@pytest.mark.parametrize("bad,needle", [
    ("Vault.multisig(2, [], script='p2wsh')", 'incompatible type "Literal[\'p2wsh\']"'),
    ("Vault.multisig('2', [])", 'incompatible type "str"'),
])
def test_a_user_gets_argument_types_checked(tmp_path, bad, needle):
    out, status = _user(tmp_path, f"from msigvault import Vault\n{bad}\n")
    assert status == 1 and needle in out, out
