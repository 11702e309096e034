"""BC-UR registry types for descriptors: crypto-output (BCR-2020-010), crypto-hdkey / crypto-keypath
(BCR-2020-007), crypto-eckey (BCR-2020-008) and crypto-account (BCR-2020-015).

Covered: the script expressions ``sh`` (400), ``wsh`` (401), ``pk`` (402), ``pkh`` (403), ``wpkh``
(404), ``combo`` (405), ``multi`` (406), ``sortedmulti`` (407), ``raw`` (408) and key-path-only
``tr`` (409); keys as crypto-eckey (306) or crypto-hdkey (303) with use-info (network), origin
(fingerprint, path, depth), children (steps, ``*`` / ``*h`` wildcard, and the ``<a;b>`` pair
component) and parent fingerprint. Not covered: ``addr`` (307), ``cosigner`` (410), key-path
ranges, taproot script trees, private keys (refused on purpose), and the version-3
``ur:output-descriptor`` (BCR-2023-010).

How an extended key maps to crypto-hdkey (this reproduces every BCR-2020-010 / -015 vector):

- ``origin`` carries the descriptor's key origin; a key without one gets the origin its xpub
  implies (empty for a master key, ``[parent fingerprint/child]`` for a depth-1 key);
- ``depth`` is written when the origin does not imply it (no fingerprint, or a path length that
  differs from the xpub's depth);
- ``parent-fingerprint`` is written unless it is zero or the one-step origin already says it;
- ``use-info`` is written for test networks only (``network: 1``).

Decoding rebuilds the xpub from key data, chain code, network, depth, parent fingerprint and the
last origin step. crypto-hdkey has no child-number field, so an xpub whose child number differs
from its origin's last step (BCR-2020-010 vector 4) comes back with the origin's step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import InvalidDescriptor, InvalidKey, MsigvaultError
from ..keys.bip32 import ExtendedKey
from ..network import Network
from ..policy.checksum import add_checksum
from ..policy.descriptors import DescriptorKey, KeyScript, Multi, Raw, Sh, Tr, Wsh, parse_descriptor
from . import TransportError
from . import _cbor

HARDENED = 0x80000000

TAG_HDKEY, TAG_KEYPATH, TAG_COININFO, TAG_ECKEY, TAG_OUTPUT, TAG_ACCOUNT = 303, 304, 305, 306, 308, 311
SCRIPT_TAGS = {
    "sh": 400, "wsh": 401, "pk": 402, "pkh": 403, "wpkh": 404, "combo": 405,
    "multi": 406, "sortedmulti": 407, "raw": 408, "tr": 409,
}
TAG_NAMES = {v: k for k, v in SCRIPT_TAGS.items()}
_MULTI = ("multi", "sortedmulti")
#: multi()/sortedmulti() hold at most 20 keys (OP_CHECKMULTISIG); counted before any is parsed.
MAX_MULTI_KEYS = 20
#: most output descriptors one crypto-account may carry.
MAX_ACCOUNT_DESCRIPTORS = 64


# ============================================================================ descriptor text


def _node(node):
    """The AST of the one parser (policy.descriptors) as ``(name, args)``; keys as key tuples."""
    if isinstance(node, KeyScript):
        return ("key", _parse_key(node.key))
    if isinstance(node, (Sh, Wsh)):
        return (type(node).__name__.lower(), _node(node.inner))
    if isinstance(node, Multi):
        if node.tapscript:
            raise InvalidDescriptor(f"{node.name}() cannot be carried in a ur:crypto-output (version 1)")
        return (node.name, (node.threshold, [_parse_key(k) for k in node.keys]))
    if isinstance(node, Raw):
        return ("raw", node.script)
    if isinstance(node, Tr):
        if node.tree is not None:
            raise InvalidDescriptor("tr() with a script tree cannot be carried in a ur:crypto-output (version 1)")
        return ("tr", _parse_key(node.internal))
    return (type(node).__name__.lower(), _parse_key(node.key))


def _parse_key(key: DescriptorKey):
    """(fingerprint or None, origin steps, key kind, key text, children, wildcard)

    children: list of int steps and ("pair", a, b) for a BIP389 ``<a;b>`` step.
    """
    if key.branches > 2:
        raise InvalidDescriptor(
            f"the multipath step of key {key.key[:12]}... has {key.branches} indexes; it must have exactly two "
            "(receive;change) to fit crypto-keypath's pair component"
        )
    children: list = list(key.paths[0])
    if key.multipath_at is not None:
        at = key.multipath_at
        children[at] = ("pair", key.paths[0][at], key.paths[1][at])
    kind = "xpub" if key.kind == "xpub" else "pubkey"
    if kind == "pubkey" and key.origin is not None:
        raise TransportError(
            "crypto-output cannot carry the key origin of a plain public key (crypto-eckey has no "
            "origin field); use the extended key instead"
        )
    fingerprint = key.origin.fingerprint if key.origin else None
    origin = key.origin.path if key.origin else ()
    return (fingerprint, origin, kind, key.key, children, key.wildcard)


def _parse_descriptor(desc: str, account: bool = False):
    """Parse with the one parser; ``account`` accepts the key-only ``wsh(KEY)`` entries of crypto-account."""
    if not isinstance(desc, str):
        raise InvalidDescriptor(f"a descriptor must be text, not {type(desc).__name__}")
    body = desc.strip()
    if any(c.isspace() for c in body):
        raise InvalidDescriptor("the descriptor contains spaces: remove them")
    parsed = parse_descriptor(body, bare_keys=account)
    return _node(parsed.node)


# ============================================================================ CBOR encoding


def _components(steps) -> list:
    out = []
    for s in steps:
        if isinstance(s, tuple):
            _, a, b = s
            out.append([a & ~HARDENED, a >= HARDENED, b & ~HARDENED, b >= HARDENED])
        else:
            out.extend([s & ~HARDENED, s >= HARDENED])
    return out


def _key_cbor(key, account_fp: "bytes | None" = None):
    fingerprint, origin, kind, text, children, wildcard = key
    if kind == "pubkey":
        return _cbor.tag(TAG_ECKEY, {3: bytes.fromhex(text)})
    xk = ExtendedKey.parse(text)
    if xk.is_private:  # pragma: no cover - refused by the parser already
        raise InvalidKey("a QR code must carry only public keys")
    m = {3: xk.key, 4: xk.chain_code}
    if not xk.is_mainnet:
        m[5] = _cbor.tag(TAG_COININFO, {2: 1})
    if fingerprint is not None:
        comps, fp = tuple(origin), fingerprint
    elif xk.depth == 1:
        comps, fp = (xk.child_number,), xk.parent_fingerprint
    else:
        comps, fp = (), None
    if account_fp is not None:
        if fp is None or fp != account_fp:
            raise InvalidDescriptor(
                f"every key of a crypto-account must have the origin [{account_fp.hex()}/...] of the "
                "account's master fingerprint"
            )
        if children or wildcard:
            raise InvalidDescriptor(
                "crypto-account keys stop at the account level: remove /0/*, /<0;1>/* and similar"
            )
    emit_fp = fp is not None and account_fp is None
    keypath = {1: _components(comps)}
    if emit_fp:
        keypath[2] = int.from_bytes(fp, "big")
    if fp is None or xk.depth != len(comps):
        keypath[3] = xk.depth
    m[6] = _cbor.tag(TAG_KEYPATH, keypath)
    if children or wildcard:
        comps_c = _components(children)
        if wildcard:
            comps_c += [[], wildcard == "*h"]
        m[7] = _cbor.tag(TAG_KEYPATH, {1: comps_c})
    parent = int.from_bytes(xk.parent_fingerprint, "big")
    if parent and not (emit_fp and len(comps) == 1 and fp == xk.parent_fingerprint):
        m[8] = parent
    return _cbor.tag(TAG_HDKEY, m)


def _node_cbor(node, account_fp=None):
    name, arg = node
    if name == "key":
        return _key_cbor(arg, account_fp)
    if name in ("sh", "wsh"):
        return _cbor.tag(SCRIPT_TAGS[name], _node_cbor(arg, account_fp))
    if name in _MULTI:
        k, keys = arg
        return _cbor.tag(SCRIPT_TAGS[name], {1: k, 2: [_key_cbor(x, account_fp) for x in keys]})
    if name == "raw":
        return _cbor.tag(SCRIPT_TAGS[name], arg)
    return _cbor.tag(SCRIPT_TAGS[name], _key_cbor(arg, account_fp))


def descriptor_to_cbor(descriptor: str) -> bytes:
    """The crypto-output CBOR (untagged at the top, as in a UR) of a descriptor."""
    return _cbor.dumps(_node_cbor(_parse_descriptor(descriptor)))


def _fingerprint(value) -> bytes:
    if isinstance(value, int) and 0 <= value < 2**32:
        return value.to_bytes(4, "big")
    if isinstance(value, (bytes, bytearray)) and len(value) == 4:
        return bytes(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{8}", value.strip()):
        return bytes.fromhex(value.strip())
    raise InvalidKey(f"a master fingerprint is 4 bytes or 8 hex digits, got {value!r}")


def account_to_cbor(master_fingerprint, descriptors) -> bytes:
    """The crypto-account CBOR: ``{1: master fingerprint, 2: [output descriptors]}``.

    Each entry is an account-level descriptor such as ``wsh([fp/48h/0h/0h/2h]xpub...)``,
    ``sh(wsh([fp/48h/0h/0h/1h]xpub...))``, ``sh([fp/45h]xpub...)``, ``wpkh([fp/84h/0h/0h]xpub...)``.
    """
    fp = _fingerprint(master_fingerprint)
    if isinstance(descriptors, str):
        descriptors = [descriptors]
    descriptors = list(descriptors)
    if len(descriptors) > MAX_ACCOUNT_DESCRIPTORS:
        raise InvalidDescriptor(
            f"a crypto-account can carry at most {MAX_ACCOUNT_DESCRIPTORS} output descriptors, not {len(descriptors)}"
        )
    entries = [_node_cbor(_parse_descriptor(d, account=True), fp) for d in descriptors]
    if not entries:
        raise InvalidDescriptor("a crypto-account needs at least one output descriptor")
    return _cbor.dumps({1: int.from_bytes(fp, "big"), 2: entries})


# ============================================================================ CBOR decoding


def _bad(what: str) -> TransportError:
    return TransportError(f"the descriptor in the UR is malformed: {what}")


def _expect_tag(value, tag: int, what: str):
    if not _cbor.is_tag(value) or value.tag != tag:
        raise _bad(f"{what} must be CBOR tag {tag}")
    return value.value


def _expect_map(value, what: str) -> Mapping:
    if not isinstance(value, Mapping) or not all(type(k) is int for k in value):
        raise _bad(f"{what} must be a map with integer keys")
    return value


def _uint(value, what: str, limit: int = 2**32) -> int:
    if type(value) is not int or not 0 <= value < limit:
        raise _bad(f"{what} must be an unsigned integer below {limit}")
    return value


def _step_text(index: int, hardened: bool) -> str:
    return f"{index}h" if hardened else str(index)


def _index(value, hardened, what: str) -> "tuple[int, bool]":
    if type(hardened) is not bool:
        raise _bad(f"{what}: each path index must be followed by true/false (hardened)")
    return _uint(value, what, HARDENED), hardened


def _decode_keypath(value, what: str, allow_children: bool):
    """(steps text list, integer steps or None if not plain, source fingerprint, depth)"""
    m = _expect_map(_expect_tag(value, TAG_KEYPATH, what), what)
    comps = m.get(1, [])
    if not isinstance(comps, (list, tuple)):
        raise _bad(f"{what} components must be an array")
    texts, ints, i = [], [], 0
    while i < len(comps):
        c = comps[i]
        if isinstance(c, (list, tuple)) and len(c) == 4:  # <a;b> pair: [a, hardened, b, hardened]
            if not allow_children:
                raise _bad(f"{what} cannot contain a multipath pair")
            a, ha = _index(c[0], c[1], what)
            b, hb = _index(c[2], c[3], what)
            texts.append(f"<{_step_text(a, ha)};{_step_text(b, hb)}>")
            ints = None
            i += 1
            continue
        if i + 1 >= len(comps):
            raise _bad(f"{what} components end without their hardened flag")
        if isinstance(c, (list, tuple)) and not c:
            if not allow_children or i + 2 != len(comps):
                raise _bad(f"{what}: a wildcard * can only be the last step of the children")
            if type(comps[i + 1]) is not bool:
                raise _bad(f"{what}: the wildcard must be followed by true/false (hardened)")
            texts.append("*h" if comps[i + 1] else "*")
            ints = None
        elif isinstance(c, (list, tuple)):
            raise TransportError(
                f"{what} uses a child range [{c[:2]}]: output descriptors cannot express ranges"
            )
        else:
            idx, hard = _index(c, comps[i + 1], what)
            texts.append(_step_text(idx, hard))
            if ints is not None:
                ints.append(idx | (HARDENED if hard else 0))
        i += 2
    fp = m.get(2)
    if fp is not None:
        fp = _uint(fp, f"{what} source fingerprint").to_bytes(4, "big")
    depth = m.get(3)
    if depth is not None:
        depth = _uint(depth, f"{what} depth", 256)
    return texts, ints, fp, depth


def _decode_key(value, account_fp: "bytes | None" = None) -> str:
    if not _cbor.is_tag(value) or value.tag not in (TAG_HDKEY, TAG_ECKEY):
        raise _bad("a key must be crypto-hdkey (tag 303) or crypto-eckey (tag 306)")
    m = _expect_map(value.value, "the key")
    if m.get(2) is True or m.get(1) is True:
        raise TransportError(
            "the ur:crypto-output contains a private key: refuse it and export only public keys "
            "(xpubs) from the device"
        )
    data = m.get(3)
    if not isinstance(data, bytes):
        raise _bad("the key has no key data")
    if value.tag == TAG_ECKEY:
        if len(data) not in (32, 33, 65):
            raise _bad("crypto-eckey data must be a 32-, 33- or 65-byte public key")
        return data.hex()
    if len(data) != 33 or data[0] not in (2, 3):
        raise _bad("crypto-hdkey key data must be a 33-byte compressed public key")
    mainnet = True
    if 5 in m:
        info = _expect_map(_expect_tag(m[5], TAG_COININFO, "use-info"), "use-info")
        if info.get(1, 0) != 0:
            raise TransportError(f"the key is for coin type {info.get(1)!r}, not bitcoin: refusing it")
        network = info.get(2, 0)
        if network not in (0, 1):
            raise _bad("use-info network must be 0 (mainnet) or 1 (testnet)")
        mainnet = network == 0
    origin_texts, origin_ints, fp, depth = [], [], None, None
    if 6 in m:
        origin_texts, origin_ints, fp, depth = _decode_keypath(m[6], "the key origin", False)
    if account_fp is not None and fp is None:
        fp = account_fp
    children = []
    if 7 in m:
        children, _, _, _ = _decode_keypath(m[7], "the key's children", True)
    chain_code = m.get(4)
    prefix = f"[{fp.hex()}{''.join('/' + t for t in origin_texts)}]" if fp is not None else ""
    if chain_code is None:
        if children:
            raise _bad("a key with children needs a chain code")
        return prefix + data.hex()
    if not isinstance(chain_code, bytes) or len(chain_code) != 32:
        raise _bad("the chain code must be 32 bytes")
    if depth is None:
        depth = len(origin_ints) if 6 in m else 0
    if 8 in m:
        parent = _uint(m[8], "parent fingerprint").to_bytes(4, "big")
    elif len(origin_ints) == 1 and fp is not None:
        parent = fp
    else:
        parent = bytes(4)
    child = origin_ints[-1] if origin_ints else 0
    if depth == 0:
        parent, child = bytes(4), 0
    net = Network.MAINNET if mainnet else Network.TESTNET
    raw = net.xpub_version + bytes([depth]) + parent + child.to_bytes(4, "big") + chain_code + data
    try:
        xpub = ExtendedKey.from_bytes(raw, hint="in the ur:crypto-output").to_base58()
    except MsigvaultError as e:
        raise TransportError(f"the ur:crypto-output holds an invalid key: {e}") from None
    return prefix + xpub + "".join("/" + t for t in children)


def _decode_node(value, top: bool, account_fp=None, allow_bare_key=False) -> str:
    if not _cbor.is_tag(value):
        raise _bad("a script expression must be a tagged CBOR item")
    if top and value.tag == TAG_OUTPUT:  # tolerate the crypto-output tag around the expression
        return _decode_node(value.value, True, account_fp, allow_bare_key)
    if value.tag in (TAG_HDKEY, TAG_ECKEY) and allow_bare_key:
        return _decode_key(value, account_fp)
    name = TAG_NAMES.get(value.tag)
    if name is None:
        raise TransportError(
            f"the ur:crypto-output uses CBOR tag {value.tag}, which msigvault does not read "
            "(supported: sh, wsh, pk, pkh, wpkh, combo, multi, sortedmulti, raw, key-only tr)"
        )
    inner = value.value
    if name in ("sh", "wsh"):
        return f"{name}({_decode_node(inner, False, account_fp, allow_bare_key)})"
    if name in _MULTI:
        m = _expect_map(inner, f"{name}()")
        k, keys = m.get(1), m.get(2)
        if not isinstance(keys, (list, tuple)) or not keys:
            raise _bad(f"{name}() needs an array of keys")
        if len(keys) > MAX_MULTI_KEYS:
            raise _bad(f"{name}() has {len(keys)} keys, more than the {MAX_MULTI_KEYS} it can hold")
        if type(k) is not int or not 1 <= k <= len(keys):
            raise _bad(f"{name}() threshold must be between 1 and the number of keys")
        return f"{name}({k},{','.join(_decode_key(x, account_fp) for x in keys)})"
    if name == "raw":
        if not isinstance(inner, bytes):
            raise _bad("raw() must hold a byte string")
        return f"raw({inner.hex()})"
    return f"{name}({_decode_key(inner, account_fp)})"


def cbor_to_descriptor(payload: bytes) -> str:
    """The descriptor (with checksum) of a crypto-output CBOR payload."""
    value = _cbor.loads(payload, "the ur:crypto-output payload")
    return add_checksum(_decode_node(value, True))


def cbor_to_account(payload: bytes) -> "tuple[bytes, list[str]]":
    value = _cbor.loads(payload, "the ur:crypto-account payload")
    if _cbor.is_tag(value) and value.tag == TAG_ACCOUNT:
        value = value.value
    if not isinstance(value, Mapping) or not isinstance(value.get(2), (list, tuple)):
        raise TransportError("the ur:crypto-account is malformed: it must be {1: fingerprint, 2: [outputs]}")
    fp = _uint(value.get(1), "master fingerprint").to_bytes(4, "big")
    if len(value[2]) > MAX_ACCOUNT_DESCRIPTORS:
        raise TransportError(
            f"the ur:crypto-account lists {len(value[2])} output descriptors, more than the "
            f"{MAX_ACCOUNT_DESCRIPTORS} msigvault reads"
        )
    outputs = [_decode_node(v, True, fp, allow_bare_key=True) for v in value[2]]
    return fp, outputs
