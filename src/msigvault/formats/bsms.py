"""BIP129 Bitcoin Secure Multisig Setup (BSMS): key records, descriptor records, TOKEN encryption.

Round 1, each Signer -> Coordinator, a *key record*::

    BSMS 1.0
    <TOKEN, hex; 00 when encryption is off>
    [<fingerprint>/<path>]<xpub>
    <description, at most 80 characters>
    <signature of the four lines above, by the key itself>

Round 2, Coordinator -> Signers, a *descriptor record*::

    BSMS 1.0
    <descriptor, or template with /**>
    /0/*,/1/*            (or "No path restrictions")
    <the wallet's first address>

With a TOKEN, each record travels as hex ``MAC || ciphertext``: ``ENCRYPTION_KEY = PBKDF2-SHA512(
"No SPOF", salt=TOKEN, 2048 rounds, 32 bytes)``, ``MAC = HMAC-SHA256(SHA256(ENCRYPTION_KEY),
hex(TOKEN) || record)``, ``IV = MAC[:16]``, AES-256-CTR.

Signatures are Bitcoin Signed Messages (the "legacy" format BIP129 accepts; BIP322 signatures are
refused with a message saying so), made and checked with libsecp256k1's recoverable ECDSA.

Used by Nunchuk, Coldcard, Passport, Sparrow, Jade and Keystone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Optional

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from embit.util import secp256k1 as _secp

from ..errors import InvalidKey
from ..keys.bip32 import ExtendedKey
from ..keys.cosigner import Cosigner
from ..keys.keyexpr import parse_key_expression
from ..keys.paths import parse_path
from ..network import Network
from ..policy.checksum import split_checksum
from ..policy.vault import NUMS_H, Vault
from ._common import (
    FormatWarning,
    WarningCode,
    FormatError,
    as_text,
    check_first_address,
    context,
    network_from_address,
    parse_descriptor,
    resolve_network,
)

FORMAT = "bsms"
VERSION = "BSMS 1.0"
NO_RESTRICTIONS = "No path restrictions"
STANDARD_RESTRICTIONS = "/0/*,/1/*"
_PASSWORD = b"No SPOF"
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_MESSAGE_MAGIC = b"\x18Bitcoin Signed Message:\n"


# -- TOKEN and encryption ---------------------------------------------------------------------


def parse_token(token) -> Optional[bytes]:
    """A BIP129 TOKEN -> its bytes (8 for STANDARD, 16 for EXTENDED), or None for NO_ENCRYPTION.

    Accepted: bytes; the hex form written in key records (16 or 32 hex digits, ``00`` for none,
    optional ``0x``); an int or a string of decimal digits (the form BIP129 recommends showing
    users; values below 2^64 give a STANDARD token); a 6-word (STANDARD) or 12-word (EXTENDED)
    BIP39 mnemonic.
    """
    if token is None:
        return None
    if isinstance(token, (bytes, bytearray)):
        raw = bytes(token)
        if raw in (b"", b"\x00"):
            return None
        if len(raw) not in (8, 16):
            raise FormatError(f"{FORMAT}: a TOKEN is 8 bytes (STANDARD) or 16 bytes (EXTENDED), not {len(raw)}")
        return raw
    if isinstance(token, bool):
        raise FormatError(f"{FORMAT}: a TOKEN is a number, hex string or mnemonic, not a boolean")
    if isinstance(token, int):
        if token == 0:
            return None
        if not 0 < token < 2**128:
            raise FormatError(f"{FORMAT}: a TOKEN is a 64-bit or 128-bit number")
        return token.to_bytes(8 if token < 2**64 else 16, "big")
    if not isinstance(token, str):
        raise FormatError(f"{FORMAT}: a TOKEN is bytes, an int, a hex or decimal string, or a mnemonic")
    t = token.strip()
    words = t.split()
    if len(words) > 1:
        return _token_from_mnemonic(words)
    if t.lower().startswith("0x"):
        t = t[2:]
        if not t or not _HEX.match(t) or len(t) > 32:
            raise FormatError(f"{FORMAT}: the TOKEN after 0x must be 1 to 32 hex digits")
        if int(t, 16) == 0:
            return None
        return bytes.fromhex(t.rjust(16 if len(t) <= 16 else 32, "0"))
    if t in ("0", "00"):
        return None
    if len(t) in (16, 32) and _HEX.match(t):
        return bytes.fromhex(t)
    if t.isdigit() and t.isascii() and len(t) <= 39:
        return parse_token(int(t))
    raise FormatError(
        f"{FORMAT}: the TOKEN is not 16 or 32 hex digits, a decimal number, or a 6- or 12-word mnemonic"
    )


def _token_from_mnemonic(words) -> bytes:
    from embit.wordlists.bip39 import WORDLIST

    if len(words) not in (6, 12):
        raise FormatError(f"{FORMAT}: a TOKEN mnemonic has 6 words (STANDARD) or 12 words (EXTENDED)")
    index = {w: i for i, w in enumerate(WORDLIST)}
    bits = 0
    for w in words:
        i = index.get(w.lower())
        if i is None:
            raise FormatError(f"{FORMAT}: the TOKEN mnemonic has a word that is not in the BIP39 English list")
        bits = (bits << 11) | i
    total = 11 * len(words)
    ent_bits = 64 if len(words) == 6 else 128
    cs_bits = total - ent_bits
    entropy = (bits >> cs_bits).to_bytes(ent_bits // 8, "big")
    if bits & ((1 << cs_bits) - 1) != hashlib.sha256(entropy).digest()[0] >> (8 - cs_bits):
        raise FormatError(f"{FORMAT}: the TOKEN mnemonic's checksum is wrong: a word was mistyped")
    return entropy


def _keys(token: bytes) -> "tuple[bytes, bytes]":
    key = hashlib.pbkdf2_hmac("sha512", _PASSWORD, token, 2048, 32)
    return key, hashlib.sha256(key).digest()


def encryption_key(token) -> bytes:
    """BIP129 ENCRYPTION_KEY of a TOKEN (for tests and audits; treat it as a secret)."""
    raw = parse_token(token)
    if raw is None:
        raise FormatError(f"{FORMAT}: TOKEN 00 means no encryption; there is no key")
    return _keys(raw)[0]


def encrypt(plaintext: str, token) -> str:
    """``hex(MAC || AES-256-CTR(plaintext))`` as BIP129 specifies."""
    raw = parse_token(token)
    if raw is None:
        raise FormatError(f"{FORMAT}: TOKEN 00 means no encryption")
    key, mac_key = _keys(raw)
    data = plaintext.encode("utf-8")
    mac = hmac.new(mac_key, raw.hex().encode() + data, "sha256").digest()
    enc = Cipher(algorithms.AES(key), modes.CTR(mac[:16])).encryptor()
    return (mac + enc.update(data) + enc.finalize()).hex()


def decrypt(data: str, token) -> str:
    """The plaintext of ``hex(MAC || ciphertext)``; the MAC is checked before anything is returned."""
    raw = parse_token(token)
    if raw is None:
        raise FormatError(f"{FORMAT}: this record is encrypted; TOKEN 00 cannot decrypt it, pass the session's TOKEN")
    blob = "".join(data.split())
    if not blob or not _HEX.match(blob) or len(blob) % 2:
        raise FormatError(f"{FORMAT}: an encrypted record is hex (MAC || ciphertext)")
    b = bytes.fromhex(blob)
    if len(b) <= 32:
        raise FormatError(f"{FORMAT}: the encrypted record is too short to hold a MAC and a record")
    mac, ct = b[:32], b[32:]
    key, mac_key = _keys(raw)
    dec = Cipher(algorithms.AES(key), modes.CTR(mac[:16])).decryptor()
    pt = dec.update(ct) + dec.finalize()
    expected = hmac.new(mac_key, raw.hex().encode() + pt, "sha256").digest()
    if not hmac.compare_digest(mac, expected):
        raise FormatError(
            f"{FORMAT}: the record's MAC does not match: the TOKEN is wrong or the record was altered in transit"
        )
    try:
        return pt.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{FORMAT}: the decrypted record is not text") from None


def is_encrypted(text: str) -> bool:
    blob = "".join(text.split())
    return len(blob) >= 66 and len(blob) % 2 == 0 and bool(_HEX.match(blob))


# -- Bitcoin Signed Message -------------------------------------------------------------------


def _compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def message_hash(message: bytes) -> bytes:
    """The digest a Bitcoin Signed Message signs: SHA256d(magic || size || message)."""
    data = _MESSAGE_MAGIC + _compact_size(len(message)) + message
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def sign_message(secret: bytes, message: bytes) -> str:
    """Base64 compact recoverable signature (compressed-key header 31-34), deterministic (RFC6979)."""
    sig = _secp.ecdsa_sign_recoverable(message_hash(message), secret)
    compact, recid = _secp.ecdsa_recoverable_signature_serialize_compact(sig)
    return base64.b64encode(bytes([31 + recid]) + compact).decode()


def recover_message_key(message: bytes, signature: str) -> bytes:
    """The compressed public key that made ``signature`` over ``message``; FormatError if none."""
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{FORMAT}: the signature is not base64") from None
    if len(raw) != 65:
        raise FormatError(
            f"{FORMAT}: the signature is {len(raw)} bytes, not a 65-byte legacy Bitcoin Signed Message; "
            "BIP322 signatures are not supported yet: ask the signer for a legacy signature"
        )
    header = raw[0]
    if not 27 <= header <= 42:
        raise FormatError(f"{FORMAT}: the signature's header byte {header} is not a Bitcoin Signed Message header")
    if header < 31:
        raise FormatError(
            f"{FORMAT}: the signature is for an uncompressed public key; multisig keys are compressed"
        )
    recid = (header - 27) & 3
    try:
        sig = _secp.ecdsa_recoverable_signature_parse_compact(raw[1:], recid)
        point = _secp.ecdsa_recover(sig, message_hash(message))
        return _secp.ec_pubkey_serialize(point)
    except ValueError:
        raise FormatError(f"{FORMAT}: the signature is invalid (no public key can be recovered from it)") from None


# -- key records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BsmsKeyRecord:
    """A verified BIP129 round-1 key record."""

    token: str  # the hex TOKEN line ("00" when encryption is off)
    key: str  # the KEY line, ``[fingerprint/path]KEY``
    description: str
    signature: str
    public_key: bytes  # the 33-byte key that signed the record
    cosigner: Optional[Cosigner]  # None when the KEY is a raw public key, not an xpub


def _check_description(description) -> str:
    if not isinstance(description, str):
        raise FormatError(f"{FORMAT}: the key description must be a string")
    if "\n" in description or "\r" in description or any(not ch.isprintable() for ch in description):
        raise FormatError(f"{FORMAT}: the key description must be one line of printable text")
    if len(description) > 80:
        raise FormatError(f"{FORMAT}: the key description may have at most 80 characters, not {len(description)}")
    return description


def bsms_key_record(root: ExtendedKey, path, network, token=None, description: str = "msigvault key") -> str:
    """A signed BIP129 key record for ``root``'s account key at ``path`` (encrypted if ``token``).

    ``root`` is the keyholder's master private key; only the account xpub and a signature by the
    account key leave this function.
    """
    if not isinstance(root, ExtendedKey) or not root.is_private:
        raise InvalidKey(f"{FORMAT}: a key record is signed with the keyholder's master private key (an ExtendedKey)")
    net = Network.from_name(network)
    steps = parse_path(path) if isinstance(path, str) else tuple(path)
    cosigner = Cosigner.from_root(root, steps, net)
    secret = root.derive(steps).key[1:]
    raw = parse_token(token)
    lines = [VERSION, raw.hex() if raw else "00", cosigner.origin("'") + cosigner.xpub, _check_description(description)]
    message = "\n".join(lines)
    record = message + "\n" + sign_message(secret, message.encode())
    return encrypt(record, raw) if raw else record


def parse_bsms_key_record(text, token=None) -> BsmsKeyRecord:
    """Decrypt (if a TOKEN is given), parse and verify a key record. Raw-pubkey records are allowed."""
    text = as_text(text, FORMAT).strip()
    raw = parse_token(token)
    if is_encrypted(text):
        if raw is None:
            raise FormatError(f"{FORMAT}: this key record is encrypted: pass the session's TOKEN")
        text = decrypt(text, raw).strip()
    lines = [line.rstrip() for line in text.split("\n")]
    if not lines or lines[0] != VERSION:
        if lines and lines[0].startswith("BSMS "):
            raise FormatError(f"{FORMAT}: unsupported BSMS version {lines[0][5:20]!r}; msigvault reads BSMS 1.0")
        raise FormatError(f"{FORMAT}: a key record starts with the line 'BSMS 1.0'")
    if len(lines) != 5:
        raise FormatError(
            f"{FORMAT}: a key record has 5 lines (version, TOKEN, key, description, signature), this has {len(lines)}"
        )
    _, token_line, key_line, description, signature = lines
    token_line = token_line.strip()
    if token_line != "00" and not (len(token_line) in (16, 32) and _HEX.match(token_line)):
        raise FormatError(f"{FORMAT}: line 2 must be the hex TOKEN (00, or 16 or 32 hex digits)")
    if raw is not None and token_line.lower() != raw.hex():
        raise FormatError(f"{FORMAT}: the key record was made for another TOKEN than this session's")
    _check_description(description)
    try:
        expr = parse_key_expression(key_line.strip())
    except InvalidKey as e:
        raise InvalidKey(f"{FORMAT}: the record's KEY line: {e}") from None
    if expr.fingerprint is None:
        raise FormatError(f"{FORMAT}: the KEY must carry its origin, [fingerprint/path]KEY")
    if expr.steps or expr.wildcard:
        raise FormatError(f"{FORMAT}: the KEY must end at the account key (no derivation after it)")
    if expr.kind == "pubkey":
        if len(expr.key) != 66:
            raise FormatError(f"{FORMAT}: the KEY is an uncompressed public key; multisig keys are compressed")
        key_pub, cosigner = bytes.fromhex(expr.key), None
    elif expr.kind == "xpub":
        with context(FORMAT):
            cosigner = Cosigner.from_key_expression(expr)
        key_pub = cosigner.public_key
    else:
        raise FormatError(f"{FORMAT}: the KEY is a private key; a key record carries only the public key")
    message = "\n".join(lines[:4]).encode()
    signer = recover_message_key(message, signature)
    if signer != key_pub:
        raise FormatError(
            f"{FORMAT}: the key record's signature was not made by the key it carries: the key was swapped "
            "or the record altered; do not use it, ask the keyholder for a new record"
        )
    return BsmsKeyRecord(token_line, key_line.strip(), description, signature.strip(), key_pub, cosigner)


def verify_bsms_key_record(text, token=None) -> Cosigner:
    """Check a key record's signature (and MAC, with a TOKEN) and return its Cosigner."""
    record = parse_bsms_key_record(text, token)
    if record.cosigner is None:
        raise FormatError(
            f"{FORMAT}: the key record carries a raw public key; a vault needs an extended public key (xpub) "
            "so that every address has fresh keys: ask the keyholder for an xpub key record"
        )
    return record.cosigner


# -- descriptor records -----------------------------------------------------------------------


def template_of(vault: Vault) -> str:
    keys = ",".join(f"{c.origin(chr(39))}{c.xpub}/**" for c in vault.cosigners)
    if vault.script == "tr":
        return f"tr({NUMS_H.hex()},{'sortedmulti_a' if vault.sorted else 'multi_a'}({vault.m},{keys}))"
    multi = f"{'sortedmulti' if vault.sorted else 'multi'}({vault.m},{keys})"
    return {"sh": "sh({})", "sh-wsh": "sh(wsh({}))", "wsh": "wsh({})"}[vault.script].format(multi)


def descriptor_record(vault: Vault) -> str:
    """The plaintext round-2 descriptor record (no trailing newline)."""
    return "\n".join([VERSION, template_of(vault), STANDARD_RESTRICTIONS, vault.address(0)])


def export(vault: Vault, *, name: str = "msigvault", token=None) -> str:
    record = descriptor_record(vault)
    raw = parse_token(token)
    return (encrypt(record, raw) if raw else record) + "\n"


def parse(text, *, network=None, token=None, fmt: str = FORMAT):
    text = as_text(text, fmt).strip()
    raw = parse_token(token)
    warnings = []
    if is_encrypted(text):
        if raw is None:
            raise FormatError(
                f"{fmt}: this is an encrypted BSMS record (hex MAC || ciphertext): pass token= with the "
                "session's TOKEN"
            )
        text = decrypt(text, raw).strip()
    elif raw is not None:
        warnings.append(FormatWarning(
            WarningCode.NOT_AUTHENTICATED, f"{fmt}: a TOKEN was given but the record is not encrypted, so no MAC protects it"))
    lines = [line.strip() for line in text.split("\n")]
    if not lines or lines[0] != VERSION:
        if lines and lines[0].startswith("BSMS "):
            raise FormatError(f"{fmt}: unsupported BSMS version {lines[0][5:20]!r}; msigvault reads BSMS 1.0")
        raise FormatError(f"{fmt}: a BSMS record starts with the line 'BSMS 1.0'")
    if len(lines) == 5:
        raise FormatError(
            f"{fmt}: this is a BSMS key record (one signer's key, round 1), not a descriptor record; "
            "read it with verify_bsms_key_record() or import_cosigner()"
        )
    if len(lines) == 3:
        raise FormatError(
            f"{fmt}: the descriptor record does not provide a first address (line 4); BIP129 requires it so that "
            "every signer can check the vault; ask the coordinator for the complete record"
        )
    if len(lines) != 4:
        raise FormatError(f"{fmt}: a descriptor record has 4 lines (version, descriptor, path restrictions, first address)")
    desc_line, restrictions, address = lines[1], lines[2], lines[3]
    if not address:
        raise FormatError(f"{fmt}: the first address (line 4) is empty")
    if restrictions == "":
        warnings.append(FormatWarning(
            WarningCode.ASSUMED_DEFAULT, f"{fmt}: the path restrictions line is blank; read as '{NO_RESTRICTIONS}'"))
        restrictions = NO_RESTRICTIONS
    compact = "".join(restrictions.split())
    if "/**" in desc_line:
        with context(fmt):
            template, _ = split_checksum(desc_line, require=False)
        if compact == STANDARD_RESTRICTIONS:
            pass
        elif restrictions == NO_RESTRICTIONS:
            warnings.append(FormatWarning(
                WarningCode.ASSUMED_DEFAULT,
                f"{fmt}: the template has no path restrictions; /** read as /<0;1>/* (receive /0/*, change /1/*) "
                "as in BIP388"
            ))
        else:
            raise FormatError(
                f"{fmt}: path restrictions {restrictions[:40]!r} are not supported: msigvault vaults receive on "
                f"/0/* and change on /1/* ({STANDARD_RESTRICTIONS})"
            )
        parsed = parse_descriptor(template.replace("/**", "/<0;1>/*"), fmt, allow=("multipath",))
        branch, index = 0, 0
    else:
        if restrictions != NO_RESTRICTIONS:
            raise FormatError(
                f"{fmt}: line 3 gives path restrictions, but line 2 is a plain descriptor, not a template with /**"
            )
        parsed = parse_descriptor(desc_line, fmt, allow=("multipath", "branch", "fixed"))
        if parsed.shape == "fixed":
            branch, index = parsed.branch, parsed.index
            warnings.append(FormatWarning(
                WarningCode.IMPLIED_BRANCH,
                f"{fmt}: the record's descriptor names one address ({'receive' if branch == 0 else 'change'} index "
                f"{index}); the vault extends it to all receive (/0/*) and change (/1/*) addresses of the same keys"
            ))
        elif parsed.shape == "branch":
            branch, index = parsed.branch, 0
            warnings.append(FormatWarning(
                WarningCode.IMPLIED_BRANCH,
                f"{fmt}: the record's descriptor covers only /{branch}/*; the vault uses /0/* and /1/* of the same keys"
            ))
        else:
            branch, index = 0, 0
    net = resolve_network(network, None, fmt)
    if net is None and not all(c.is_mainnet for c in parsed.cosigners(fmt)):
        net = network_from_address(address)
    vault, origin_notes = parsed.build(net, fmt)
    warnings += origin_notes
    check_first_address(vault, address, fmt, branch=branch, index=index)
    return vault, None, warnings

