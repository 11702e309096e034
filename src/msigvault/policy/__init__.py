"""Vault policies: m-of-n multisig as output descriptors, scripts and addresses."""

from .checksum import add_checksum, descriptor_checksum, split_checksum
from .vault import CHANGE, MAX_KEYS, NUMS_H, RECEIVE, SCRIPT_TYPES, DerivedScript, Vault

__all__ = [
    "Vault", "DerivedScript", "SCRIPT_TYPES", "MAX_KEYS", "NUMS_H", "RECEIVE", "CHANGE",
    "descriptor_checksum", "add_checksum", "split_checksum",
]
