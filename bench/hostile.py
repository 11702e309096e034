"""Time to refuse hostile descriptors and key files, and to parse the largest valid vaults.

Run: .venv/bin/python bench/hostile.py
Point PYTHONPATH at an older checkout's src/ to measure it the same way (the "before" column of
docs/performance.md); inputs the older code accepts or refuses differently are still timed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from embit.util import secp256k1 as _secp

from msigvault import Vault
from msigvault.keys.bip32 import ExtendedKey
from msigvault.network import Network
from msigvault.policy.vault import NUMS_H

NET = Network.REGTEST
_GEN = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)
_CHARSET = ("0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~"
            "ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ")


def checksum(desc: str) -> str:
    """BIP380 checksum, reference form (no length limit: the inputs here are over it)."""
    def polymod(c, val):
        c0 = c >> 35
        c = ((c & 0x7FFFFFFFF) << 5) ^ val
        for i in range(5):
            if (c0 >> i) & 1:
                c ^= _GEN[i]
        return c

    c, cls, count = 1, 0, 0
    for ch in desc:
        pos = _CHARSET.index(ch)
        c = polymod(c, pos & 31)
        cls, count = cls * 3 + (pos >> 5), count + 1
        if count == 3:
            c, cls, count = polymod(c, cls), 0, 0
    if count:
        c = polymod(c, cls)
    for _ in range(8):
        c = polymod(c, 0)
    c ^= 1
    return desc + "#" + "".join("qpzry9x8gf2tvdw0s3jn54khce6mua7l"[(c >> (5 * (7 - j))) & 31] for j in range(8))


def keys(n: int) -> "list[str]":
    out = []
    for i in range(n):
        secret = hashlib.sha256(b"bench" + i.to_bytes(4, "big")).digest()
        pub = _secp.ec_pubkey_serialize(_secp.ec_pubkey_create(secret))
        xpub = ExtendedKey(NET.xpub_version, 4, b"\1\2\3\4", 2 + 0x80000000, hashlib.sha256(secret).digest(), pub)
        out.append(f"[{hashlib.sha256(secret).digest()[:4].hex()}/48h/1h/0h/2h]{xpub.to_base58()}/<0;1>/*")
    return out


def timed(fn) -> "tuple[float, str]":
    t = time.perf_counter()
    try:
        fn()
        outcome = "accepted"
    except Exception as e:  # the point is to see what happens
        outcome = type(e).__name__
    return time.perf_counter() - t, outcome


def descriptor_cases(big: bool):
    ks = keys(999)
    xpub = ks[0].split("]")[1].split("/")[0]
    listing = lambda n: "<" + ";".join(map(str, range(n))) + ">"  # noqa: E731
    two = lambda mp: f"wsh(multi(1,{xpub}/{mp}/*,{xpub}/{mp}/*))"  # noqa: E731
    yield "tr, 999 keys with origins (valid)", checksum(f"tr({NUMS_H.hex()},sortedmulti_a(2,{','.join(ks)}))")
    yield "wsh, 20 keys with origins (valid)", checksum(f"wsh(sortedmulti(2,{','.join(ks[:20])}))")
    yield "multipath list of 8,000 indexes", checksum(two(listing(8_000)))
    yield "multipath list of 12,000 indexes", checksum(two(listing(12_000)))
    if big:
        yield "multipath list of 80,000 indexes", checksum(two(listing(80_000)))
        yield "tr, 60,000 keys", checksum(f"tr({NUMS_H.hex()},sortedmulti_a(2,{','.join([ks[0]] * 60_000)}))")


def keystore_cases(tmp: Path):
    from msigvault.keys import keystore as ksm

    ks = ksm.Keystore.create(tmp / "k.key", "bench passphrase", kdf_cost=ksm.MIN_SCRYPT_N)
    obj = json.loads((tmp / "k.key").read_bytes())
    for n, r, p in ((2 ** 14, 8, 1), (2 ** 20, 8, 16)):
        obj["kdf"].update(n=n, r=r, p=p)
        path = tmp / f"{n}-{r}-{p}.key"
        path.write_bytes(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        path.chmod(0o600)
        yield f"keystore unlock, scrypt N=2^{n.bit_length() - 1} r={r} p={p}", path
    del ks


def main(big: bool = False) -> None:
    print(f"{'input':44} {'chars':>9} {'seconds':>8}  outcome")
    for name, desc in descriptor_cases(big):
        secs, outcome = timed(lambda: Vault.from_descriptor(desc, network=NET))
        print(f"{name:44} {len(desc):9,} {secs:8.3f}  {outcome}")
    from msigvault.keys.keystore import Keystore

    with tempfile.TemporaryDirectory() as d:
        for name, path in keystore_cases(Path(d)):
            secs, outcome = timed(lambda: Keystore.open(path).unlock("bench passphrase"))
            print(f"{name:44} {'':9} {secs:8.3f}  {outcome}")


if __name__ == "__main__":
    main(big="--big" in sys.argv)
