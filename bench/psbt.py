"""The PSBT ceremony at N inputs, msigvault next to BDK, embit and the libsecp256k1 floor, one run.

Run: .venv/bin/python bench/psbt.py [--sizes 10 100 1000 10000] [--scripts sh wsh tr]
                                    [--compare-upto 1000] [--quick]

Scenario (issue 20): a 2-of-3 vault; N inputs, ten per funding transaction (each input carries
its full previous transaction of 10 outputs); one payment plus change at 1 sat/vB. Above 1,000
inputs the transaction is above the standard weight: the benchmark lifts the creator's and
extractor's ``max_weight`` (the figures are for the work, not for relay).

Stages, each on a fresh Vault object, as on separate machines:
  sign       one cosigner (every signer check, previous transactions hashed, scripts rebuilt),
             its vault loaded with the keyholder's derived-key record (policy/derived.py: the
             child keys of the indexes it signed for before, signed by their registration key;
             loading and checking it is timed)
  sign cold  the same without a record: the first signing on a new machine (BIP32 child steps)
  c+f+e      combine_finalize_extract of two signed copies: every signature verified, scripts
             rebuilt from the vault, libbitcoinkernel verifies every input (one call); the
             coordinator's vault loaded with its own derived-key record (timed)
  c+f+e cold the same without a record
  C only     what c+f+e cannot avoid, with no Python around it: libsecp256k1 verifying each
             signature once (key and signature parsed) plus libbitcoinkernel verifying every input
  floor      libsecp256k1 alone making the same number of signatures (low-R ECDSA, or BIP340
             with a keypair per key for tr) with the fastest binding installed
  BDK, embit one cosigner signing the same PSBT (bdkpython Wallet.sign; embit PSBT.sign_with),
             up to --compare-upto inputs (embit's signer is quadratic)
Times are CPU seconds of this process (time.process_time: every stage is single-threaded, and
the development machine is shared, so wall-clock time measures the neighbours), best of 3 runs
(1 at N >= 10,000); peak memory from one run under tracemalloc (Python allocations).
libbitcoinkernel is loaded before timing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from msigvault import Vault  # noqa: E402
from msigvault.network import Network  # noqa: E402
try:  # derived-key records (issue 20); code before them measures the cold stages only
    from msigvault.policy.derived import keyholder_signer, keyholder_trusted_key, signer_key
except ImportError:  # pragma: no cover
    keyholder_signer = keyholder_trusted_key = signer_key = None  # type: ignore[assignment]
from msigvault.policy.vault import NUMS_H  # noqa: E402
from msigvault.psbt import fields as F  # noqa: E402
from msigvault.psbt.common import legacy_txid  # noqa: E402
from msigvault.psbt.signer import SignerPolicy, sign  # noqa: E402
from msigvault.testing.keyholders import TestKeyholder  # noqa: E402
from msigvault.types import Utxo  # noqa: E402

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
PER_TX = 10
AMOUNT = 100_000
# 10,000 legacy inputs at 1 sat/vB pay about 2.9 M sats, above the default 2.5 M limit, and
# 10,000 coins use vault indexes above the default index limit of 1,000: both lifted for the
# benchmark only (the fee-fraction and fee-rate limits stay)
POLICY = SignerPolicy(max_fee_sats=10**8, index_limit=100_000)
# the coordinator's own key for its derived-key record
COORDINATOR_SECRET = hashlib.sha256(b"msigvault bench: the coordinator's derived-key record").digest()
COORDINATOR_KEY = signer_key(COORDINATOR_SECRET) if signer_key else b""


def pipeline(psbts: list, vault: Vault) -> Any:
    """(finalized PSBT, FinalTx): combine + finalize + extract in one call (or the three calls, on
    code without it)."""
    try:
        from msigvault.psbt.extractor import combine_finalize_extract
    except ImportError:  # the code before issue 20
        from msigvault.psbt.combiner import combine
        from msigvault.psbt.extractor import extract
        from msigvault.psbt.finalizer import finalize

        final = finalize(combine(psbts, vault), vault)
        return final, extract(final, max_weight=None, max_fee_sats=None)
    return combine_finalize_extract(psbts, vault, max_weight=None, max_fee_sats=None)


def funded(vault: Vault, n: int) -> "list[Utxo]":
    """N vault coins, PER_TX per funding transaction (its other outputs pay the vault too)."""
    utxos = []
    for t in range(0, n, PER_TX):
        scripts = [vault.derive_branch(0, t + j).script_pubkey for j in range(PER_TX)]
        prev = F.serialize_tx(2, [(hashlib.sha256(b"bench-funding-%d" % t).digest(), 0, 0xFFFFFFFF)],
                              [(AMOUNT, s) for s in scripts], 0)
        txid = legacy_txid(F.parse_tx(prev, "funding"))[::-1].hex()
        utxos += [Utxo(txid, j, AMOUNT, scripts[j], 0, t + j, prev) for j in range(min(PER_TX, n - t))]
    return utxos


def best(fn: Callable[[], Any], runs: int) -> "tuple[Any, float]":
    out, low = None, float("inf")
    for _ in range(runs):
        t = time.process_time()
        out = fn()
        low = min(low, time.process_time() - t)
    return out, low


def peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


# -- the floor: libsecp256k1 alone -------------------------------------------------------------

def floor_signer(script: str) -> "tuple[str, Callable[[list], None]]":
    """(binding name, fn signing [(secret, msg), ...]): libsecp256k1 called through ctypes with
    no wrapper at all, the fastest way to reach the library installed here (embit's bundled
    build; no other binding, e.g. coincurve, is installed, and coincurve cannot grind low R)."""
    import ctypes

    from embit.util import ctypes_secp256k1 as ct

    lib, ctx = ct._secp, ct._secp.ctx
    if script == "tr":
        def sign_tr(items: list) -> None:
            for secret, msg in items:
                pair, sig = bytes(96), bytes(64)
                lib.secp256k1_keypair_create(ctx, pair, secret)
                lib.secp256k1_schnorrsig_sign(ctx, sig, msg, pair, None, os.urandom(32))  # as msigvault signs
        return "libsecp256k1 (embit's bundled build, ctypes, no wrapper)", sign_tr

    def sign_ecdsa(items: list) -> None:
        sign, serialize = lib.secp256k1_ecdsa_sign, lib.secp256k1_ecdsa_signature_serialize_der
        for secret, msg in items:
            sig, der = bytes(64), bytes(74)
            size = ctypes.c_size_t(74)
            ref = ctypes.byref(size)
            extra, counter = None, 0
            while True:
                sign(ctx, sig, msg, secret, None, extra)
                size.value = 74
                serialize(ctx, der, ref, sig)
                counter += 1
                if size.value <= 70:
                    break
                extra = counter.to_bytes(32, "little")
    return "libsecp256k1 (embit's bundled build, ctypes, no wrapper)", sign_ecdsa


def cfe_floor(script: str, tx: Any, copies: list, vault: Vault, runs: int) -> "float | None":
    """Seconds of the C work c+f+e cannot avoid, called with no wrapper: libsecp256k1 verifying
    each signature once (parse the key and the signature, verify) plus libbitcoinkernel verifying
    every input of the final transaction (its objects built before timing). None without pbk."""
    import ctypes

    from embit.util import ctypes_secp256k1 as ct

    from msigvault.psbt.common import spent_output, unsigned_tx
    from msigvault.psbt.sighash import SighashCache

    try:
        import pbk
        from pbk.script import PrecomputedTransactionData
    except ImportError:
        return None
    lib, ctx = ct._secp, ct._secp.ctx
    spent = [spent_output(copies[0], i, Exception, require_full_tx=False) for i in range(copies[0].input_count)]
    cache = SighashCache(unsigned_tx(copies[0]), spent if script == "tr" else None)
    triples = []
    for i in range(copies[0].input_count):
        d = vault.derive_branch(0, int.from_bytes(
            next(v for k, v in copies[0].inputs[i].items() if k[0] in (F.PSBT_IN_BIP32_DERIVATION,
                                                                       F.PSBT_IN_TAP_BIP32_DERIVATION))[-4:], "little"))
        for p in copies:
            for key, value in p.inputs[i].items():
                if key[0] == F.PSBT_IN_PARTIAL_SIG:
                    script_code = d.redeem_script if script == "sh" else d.witness_script
                    msg = cache.legacy(i, script_code, 1) if script == "sh" else cache.segwit_v0(i, script_code, spent[i].amount, 1)
                    triples.append((key[1:], value[:-1], msg))
                elif key[0] == F.PSBT_IN_TAP_SCRIPT_SIG:
                    triples.append((key[1:33], value[:64], cache.taproot(i, 0, leaf_hash=key[33:])))

    def verify_all() -> None:
        for pk, sig, msg in triples:
            point, parsed = bytes(64), bytes(64)
            if script == "tr":
                lib.secp256k1_xonly_pubkey_parse(ctx, point, pk)
                assert lib.secp256k1_schnorrsig_verify(ctx, sig, msg, point)
            else:
                lib.secp256k1_ec_pubkey_parse(ctx, point, pk, len(pk))
                lib.secp256k1_ecdsa_signature_parse_der(ctx, parsed, sig, len(sig))
                assert lib.secp256k1_ecdsa_verify(ctx, parsed, msg, point)

    raw = tx.raw
    ktx = pbk.Transaction.__new__(pbk.Transaction)
    from pbk.capi.base import KernelOpaquePtr

    KernelOpaquePtr.__init__(ktx, (ctypes.c_ubyte * len(raw)).from_buffer_copy(raw), len(raw))
    kscripts = [pbk.ScriptPubkey(o.script_pubkey) for o in spent]
    kspent = [pbk.TransactionOutput(k, o.amount) for k, o in zip(kscripts, spent)]
    pre = PrecomputedTransactionData(ktx, kspent)
    verify = pbk.capi.bindings.btck_script_pubkey_verify
    status = pbk.capi.bindings.btck_ScriptVerifyStatus(0)
    flags = int(pbk.ScriptVerificationFlags.ALL)

    def kernel_all() -> None:
        for i, o in enumerate(spent):
            assert verify(kscripts[i], o.amount, ktx, pre, i, flags, status)

    return best(verify_all, runs)[1] + best(kernel_all, runs)[1]


# -- the others --------------------------------------------------------------------------------

def bdk_signer(vault: Vault, holders: list) -> "Callable[[str], Any] | None":
    try:
        import bdkpython as bdk
    except ImportError:
        return None

    def desc(branch: int) -> Any:
        keys = []
        for i, (c, h) in enumerate(zip(vault.cosigners, holders)):
            keys.append(f"{c.origin()}{h.root.derive(c.path).to_base58()}/{branch}/*" if i == 0 else f"{c}/{branch}/*")
        inner = ("sortedmulti" if vault.sorted else "multi") + f"({vault.m},{','.join(keys)})"
        text = {"wsh": f"wsh({inner})", "sh": f"sh({inner})",
                "tr": f"tr({NUMS_H.hex()},multi_a({vault.m},{','.join(keys)}))"}[vault.script]
        return bdk.Descriptor(text, bdk.NetworkKind.TEST)

    wallet = bdk.Wallet(desc(0), desc(1), bdk.Network.REGTEST, bdk.Persister.new_in_memory())
    options = bdk.SignOptions(trust_witness_utxo=True, assume_height=None, allow_all_sighashes=False,
                              try_finalize=False, sign_with_tap_internal_key=False, allow_grinding=True)

    def run(b64: str) -> Any:
        p = bdk.Psbt(b64)
        wallet.sign(p, options)
        return p
    return run


def embit_signer(holders: list) -> "Callable[[bytes], Any]":
    from embit.bip32 import HDKey
    from embit.psbt import PSBT

    root = HDKey.from_string(holders[0].root.to_base58())
    return lambda raw: PSBT.parse(raw).sign_with(root)


# -- one size, one script type -----------------------------------------------------------------

def run(script: str, n: int, compare_upto: int) -> dict:
    holders = [TestKeyholder.from_label(x) for x in ("alice", "bob", "carol")]
    vault = Vault.multisig(2, [h.cosigner(script) for h in holders], script=script, network=NET,
                           sorted=script != "tr")  # BDK has no sortedmulti_a
    desc = vault.descriptor()
    fresh = lambda: Vault.from_descriptor(desc, network=NET)  # noqa: E731
    utxos = funded(vault, n)
    psbt = fresh().create_psbt(utxos, [(EXTERNAL, (AMOUNT - 1_000) * n)], fee_rate=1.0, change_index=0,
                               max_weight=None, fee_limits=POLICY)
    # the records each machine keeps from earlier work (made before timing): the keyholder's, signed
    # by their registration key, holds the keys of the indexes they signed for; the coordinator's,
    # signed by its own key, those of the coins it watches
    if signer_key is None:  # the code before derived-key records: every stage is cold
        keyholder = coordinator = fresh
        return measure(script, n, compare_upto, vault, holders, psbt, fresh, keyholder, coordinator)
    earlier = fresh()
    sign(psbt, earlier, holders[0].root, policy=POLICY)
    keyholder_record = earlier.dump_derived_keys(secret=keyholder_signer(earlier, holders[0].root))
    keyholder_key = keyholder_trusted_key(earlier.cosigners[0])
    watching = fresh()
    for u in utxos:
        watching.derive_branch(0, u.index)
    watching.derive_branch(1, 0)
    coordinator_record = watching.dump_derived_keys(secret=COORDINATOR_SECRET)

    def keyholder() -> Vault:
        v = fresh()
        v.load_derived_keys(keyholder_record, trusted_key=keyholder_key)
        return v

    def coordinator() -> Vault:
        v = fresh()
        v.load_derived_keys(coordinator_record, trusted_key=COORDINATOR_KEY)
        return v

    return measure(script, n, compare_upto, vault, holders, psbt, fresh, keyholder, coordinator)


def measure(script: str, n: int, compare_upto: int, vault: Vault, holders: list, psbt: Any,
            fresh: Callable[[], Vault], keyholder: Callable[[], Vault], coordinator: Callable[[], Vault]) -> dict:
    runs = 1 if n >= 10_000 else 3
    row: dict = {"script": script, "n": n}
    (a, _), row["sign"] = best(lambda: sign(psbt, keyholder(), holders[0].root, policy=POLICY), runs)
    _, row["sign_cold"] = best(lambda: sign(psbt, fresh(), holders[0].root, policy=POLICY), runs)
    b, _ = sign(psbt, fresh(), holders[1].root, policy=POLICY)
    (_, tx), row["cfe"] = best(lambda: pipeline([a, b], coordinator()), runs)
    _, row["cfe_cold"] = best(lambda: pipeline([a, b], fresh()), runs)
    row["kernel"] = tx.verified_by_kernel
    row["cfe_floor"] = cfe_floor(script, tx, [a, b], vault, runs)
    row["sign_mib"] = peak_mib(lambda: sign(psbt, keyholder(), holders[0].root, policy=POLICY))
    row["cfe_mib"] = peak_mib(lambda: pipeline([a, b], coordinator()))
    # the floor: the same number of signatures, each by its own key, over its own message
    items = [(hashlib.sha256(b"floor-key-%d" % i).digest(), hashlib.sha256(b"floor-msg-%d" % i).digest())
             for i in range(n)]
    row["floor_binding"], floor = floor_signer(script)
    _, row["floor"] = best(lambda: floor(items), runs)
    if n <= compare_upto:
        bdk_sign = bdk_signer(vault, holders)
        if bdk_sign is not None:
            b64 = psbt.to_base64()
            _, row["bdk"] = best(lambda: bdk_sign(b64), runs)
        if script != "tr":  # embit's signer does not sign multi_a leaves
            raw = psbt.serialize()
            _, row["embit"] = best(lambda: embit_signer(holders)(raw), 1 if n >= 1000 else runs)
    return row


def rate(n: int, seconds: "float | None") -> str:
    return f"{n / seconds:>9,.0f}" if seconds else f"{'':>9}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10_000])
    ap.add_argument("--scripts", nargs="+", default=["sh", "wsh", "tr"])
    ap.add_argument("--compare-upto", type=int, default=1000, help="run BDK and embit up to this N")
    args = ap.parse_args()
    try:
        import pbk  # noqa: F401  (load libbitcoinkernel before timing)
    except ImportError:
        print("note: libbitcoinkernel (extra 'regtest') is not installed: extraction is not kernel-verified")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"2-of-3, {PER_TX} inputs per funding transaction; inputs per second unless marked")
    head = (f"{'type':<4} {'N':>6} {'sign/s':>9} {'floor/s':>9} {'vs floor':>8} {'cold/s':>9} {'cold vs':>7} "
            f"{'BDK/s':>9} {'embit/s':>9} {'c+f+e s':>8} {'cold s':>7} {'C only':>7} {'sign us/in':>10} {'c+f+e us/in':>11} "
            f"{'sign MiB':>8} {'c+f+e MiB':>9}")
    print(head)
    rows = []
    for script in args.scripts:
        run(script, 10, 0)  # warm-up
        for n in args.sizes:
            r = run(script, n, args.compare_upto)
            rows.append(r)
            print(f"{script:<4} {n:>6} {rate(n, r['sign'])} {rate(n, r['floor'])} {r['floor'] / r['sign']:>8.2f} "
                  f"{rate(n, r['sign_cold'])} {r['floor'] / r['sign_cold']:>7.2f} "
                  f"{rate(n, r.get('bdk'))} {rate(n, r.get('embit'))} {r['cfe']:>8.3f} {r['cfe_cold']:>7.3f} "
                  f"{r['cfe_floor'] if r['cfe_floor'] is None else format(r['cfe_floor'], '7.3f'):>7} "
                  f"{r['sign'] / n * 1e6:>10.0f} {r['cfe'] / n * 1e6:>11.0f} {r['sign_mib']:>8.1f} "
                  f"{r['cfe_mib']:>9.1f}" + ("" if r["kernel"] else "  (no kernel)"), flush=True)
    print(f"floor binding: {rows[0]['floor_binding'] if rows else '-'}")
    for script in args.scripts:
        mine = [r for r in rows if r["script"] == script]
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            print(f"{script}: per-input cost N={hi['n']} vs N={lo['n']}: sign "
                  f"{(hi['sign'] / hi['n']) / (lo['sign'] / lo['n']):.2f}x, c+f+e "
                  f"{(hi['cfe'] / hi['n']) / (lo['cfe'] / lo['n']):.2f}x")


if __name__ == "__main__":
    main()
