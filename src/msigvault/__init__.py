"""msigvault: multi-signature cold-storage bitcoin vaults.

The public API is imported lazily so that ``msigvault --help`` starts fast.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Vault": "msigvault.policy.vault",
    "DerivedScript": "msigvault.policy.vault",
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


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'msigvault' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
