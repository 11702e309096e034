"""BIP39 mnemonics: fresh ones from the OS CSPRNG only, validation, and mnemonic -> seed."""

from __future__ import annotations

import secrets
import unicodedata

from embit import bip39

from ..errors import InvalidKey
from ..network import Network
from .bip32 import ExtendedKey, root_from_seed

_WORDSET = frozenset(bip39.WORDLIST)
_WORDS_TO_BYTES = {12: 16, 15: 20, 18: 24, 21: 28, 24: 32}


def generate_mnemonic(words: int = 24) -> str:
    """A new BIP39 mnemonic from the operating system's CSPRNG (``secrets``); no fallback source."""
    if words not in _WORDS_TO_BYTES:
        raise InvalidKey(f"a BIP39 mnemonic has 12, 15, 18, 21 or 24 words, not {words}")
    return bip39.mnemonic_from_bytes(secrets.token_bytes(_WORDS_TO_BYTES[words]))


def normalize_mnemonic(mnemonic: str) -> str:
    """Lower-case, single-spaced, and checked (word list and checksum)."""
    if not isinstance(mnemonic, str):
        raise InvalidKey("a mnemonic is a string of words")
    words = mnemonic.strip().lower().split()
    if len(words) not in _WORDS_TO_BYTES:
        raise InvalidKey(
            f"a BIP39 mnemonic has 12, 15, 18, 21 or 24 words; this one has {len(words)}: "
            "check for missing or extra words"
        )
    unknown = [i + 1 for i, w in enumerate(words) if w not in _WORDSET]
    if unknown:
        raise InvalidKey(
            "word(s) at position " + ", ".join(map(str, unknown))
            + " are not in the BIP39 English word list: check their spelling"
        )
    text = " ".join(words)
    if not bip39.mnemonic_is_valid(text):
        raise InvalidKey("the mnemonic's checksum does not match: a word is wrong or the order is off")
    return text


def mnemonic_to_seed(mnemonic: str, passphrase: str = "") -> bytes:
    """BIP39 seed (64 bytes) from a checked mnemonic and an optional BIP39 passphrase."""
    return bip39.mnemonic_to_seed(normalize_mnemonic(mnemonic), unicodedata.normalize("NFKD", passphrase))


def mnemonic_to_root(mnemonic: str, network: Network, passphrase: str = "") -> ExtendedKey:
    """BIP32 master private key for ``network`` from a mnemonic."""
    return root_from_seed(mnemonic_to_seed(mnemonic, passphrase), network)
