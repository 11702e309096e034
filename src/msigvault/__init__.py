"""msigvault: multi-signature cold-storage bitcoin vaults.

The public API is imported lazily so that ``msigvault --help`` starts fast; the
``TYPE_CHECKING`` block below shows type checkers and IDEs every public name, and costs
nothing at run time.
"""

__version__ = "0.1.0"

# not typing.TYPE_CHECKING: importing typing would cost start-up time; checkers treat a module
# constant of this name the same way
TYPE_CHECKING = False
if TYPE_CHECKING:  # keep in step with _EXPORTS (tests/test_public_api.py checks it); "X as X" re-exports
    from typing import Any

    from msigvault.errors import MsigvaultError as MsigvaultError
    from msigvault.formats import export_vault as export_vault, import_vault as import_vault
    from msigvault.keys.bip32 import ExtendedKey as ExtendedKey
    from msigvault.keys.cosigner import Cosigner as Cosigner
    from msigvault.keys.keystore import Keystore as Keystore
    from msigvault.network import Network as Network
    from msigvault.policy.vault import DerivedScript as DerivedScript, Deviation as Deviation, Vault as Vault
    from msigvault.scripttypes import ScriptType as ScriptType
    from msigvault.types import Utxo as Utxo

_EXPORTS = {
    "Vault": "msigvault.policy.vault",
    "DerivedScript": "msigvault.policy.vault",
    "Deviation": "msigvault.policy.vault",
    "ScriptType": "msigvault.scripttypes",
    "Cosigner": "msigvault.keys.cosigner",
    "ExtendedKey": "msigvault.keys.bip32",
    "Network": "msigvault.network",
    "MsigvaultError": "msigvault.errors",
    "Utxo": "msigvault.types",
    "Keystore": "msigvault.keys.keystore",
    "import_vault": "msigvault.formats",
    "export_vault": "msigvault.formats",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> "Any":
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'msigvault' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
    return __all__
