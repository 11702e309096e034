"""Every failure a user can cause raises a subclass of :class:`MsigvaultError`.

Messages say what was wrong and what to do about it. They never contain a private
key, seed or passphrase.
"""


class MsigvaultError(Exception):
    """Base class of every error a user of msigvault can cause."""


class InvalidKey(MsigvaultError):
    """A key, extended key, fingerprint or derivation path is malformed or misused."""


class InvalidDescriptor(MsigvaultError):
    """An output descriptor cannot be parsed or does not describe a supported vault."""


class ChecksumError(InvalidDescriptor):
    """A descriptor checksum is missing or does not match."""


class PolicyError(MsigvaultError):
    """A vault policy breaks a rule (m-of-n limits, duplicate cosigners, ...)."""


class NetworkMismatch(MsigvaultError):
    """Keys, addresses or files belong to a different network than expected."""


class InvalidAddress(MsigvaultError):
    """An address cannot be decoded for the expected network."""


class InvalidPSBT(MsigvaultError):
    """A PSBT is malformed; the message names the offending field."""


class SignerRefusal(MsigvaultError):
    """The signer refused to sign: the PSBT asks for something the vault did not authorise."""


class RegistrationError(SignerRefusal):
    """A keyholder's vault registration is missing, does not verify, or was made by another key."""


class CombineError(MsigvaultError):
    """PSBTs cannot be combined (different transactions, conflicting or invalid signatures)."""


class FinalizeError(MsigvaultError):
    """A PSBT cannot be finalized (for example: not enough signatures)."""


class ExtractError(MsigvaultError):
    """The final transaction fails a sanity or consensus check."""


class CoinSelectionError(MsigvaultError):
    """The available UTXOs cannot pay for the requested outputs and fee."""


class KeystoreError(MsigvaultError):
    """A keystore cannot be created, opened or decrypted."""


class ChainError(MsigvaultError):
    """A chain backend rejected a request (for example: an invalid transaction)."""
