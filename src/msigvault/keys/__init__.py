"""Keys: BIP39 mnemonics, strict BIP32 extended keys, BIP48/BIP87 paths, Cosigner records."""

from .bip32 import ExtendedKey, PublicDeriver, root_from_seed
from .cosigner import Cosigner
from .mnemonic import generate_mnemonic, mnemonic_to_root, mnemonic_to_seed, normalize_mnemonic
from .paths import (
    HARDENED,
    bip48_path,
    bip87_path,
    default_account_path,
    format_path,
    parse_path,
)

__all__ = [
    "ExtendedKey", "PublicDeriver", "root_from_seed", "Cosigner",
    "generate_mnemonic", "mnemonic_to_root", "mnemonic_to_seed", "normalize_mnemonic",
    "HARDENED", "bip48_path", "bip87_path", "default_account_path", "format_path", "parse_path",
]
