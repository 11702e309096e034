"""The chain-of-custody record of one intake: made, signed, exported (JSON + HTML), verified offline.

The record is one line of canonical JSON (sorted keys, no spaces, ASCII) with a ``signature``:
the operator's Ed25519 identity key (msigvault.identity) over ``"msigvault/custody-record/v1\\0"``
and the canonical JSON of every other field. :func:`verify_record` needs nothing but the file:
the bytes must be exactly the canonical form (so any edited byte fails), the signature must
verify, the identity id must match its keys, the vault descriptor must give the recorded policy
id and addresses, each sweep transaction must hash to its txid, spend exactly the listed found
coins and pay exactly the listed vault addresses, and every total must add up.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from .errors import CustodyError

if TYPE_CHECKING:
    from ..identity import IdentityKey
    from ..vaultfile import VaultFile
    from .discover import Watch
    from .scan import Found
    from .sweep import Plan, Signed

RECORD_FORMAT = "msigvault-custody-record"
SUMMARY_KIND = "msigvault-custody-summary"
RECORD_VERSION = 1
RECORD_TAG = b"msigvault/custody-record/v1\0"
MAX_RECORD_BYTES = 64 * 1024 * 1024
MAX_TEXT = 2000


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


@dataclass(frozen=True)
class CaseInfo:
    """What the operator states about the intake (free text, checked for length only)."""

    case: str
    handler: str
    description: str
    seized_at: str = ""

    def __post_init__(self) -> None:
        for name in ("case", "handler", "description", "seized_at"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise CustodyError(f"the {name} is text of at most {MAX_TEXT} characters", field=name)
        if not self.case.strip() or not self.handler.strip():
            raise CustodyError("a custody record names the case reference and the handler")


def build_record(case: CaseInfo, watch: "Watch", found: "Found", plan: "Plan", signed: "Signed",
                 vault_file: "VaultFile", heights: "Mapping[str, Optional[int]]", operator: "IdentityKey", *,
                 recorded_at: str) -> bytes:
    """The signed record's bytes (canonical JSON and a newline), after checking the files chain up."""
    if found.watch_sha256 != watch.sha256 or plan.found_sha256 != found.sha256 or signed.plan_sha256 != plan.sha256:
        raise CustodyError("the watch, found, plan and signed files do not belong together (each names the "
                           "previous one's hash): give the files of this one intake")
    vault = vault_file.vault
    if len(signed.transactions) != len(plan.transactions):
        raise CustodyError("the signed file does not hold one transaction for each of the plan's")
    if signed.policy_id != vault.policy_id:
        raise CustodyError("the sweep went to another vault than this vault file")
    coins = {c.outpoint: c for c in found.coins}
    sweeps: "list[dict[str, Any]]" = []
    for t, p in zip(signed.transactions, plan.transactions):
        sweeps.append({"txid": t.txid, "raw": t.raw.hex(), "fee": t.fee, "vsize": t.vsize,
                       "inputs": [c.outpoint for c in p.inputs],
                       "outputs": [{"vault_index": i, "address": a, "amount": v} for i, a, v in t.outputs],
                       "confirmation_height": heights.get(t.txid)})
    body = {
        "format": RECORD_FORMAT, "version": RECORD_VERSION, "case": case.case, "handler": case.handler,
        "network": vault.network.name,
        "source": {"description": case.description, "kind": watch.source_kind, "summary": watch.summary},
        "times": {"seized_at": case.seized_at, "prepared": watch.created, "scanned": found.scanned_at,
                  "planned": plan.created, "signed": signed.signed_at, "recorded": recorded_at},
        "found": [{"address": c.address, "txid": c.txid, "vout": c.vout, "amount": c.amount, "height": c.height}
                  for c in coins.values()],
        "found_total": found.total,
        "left_out": [{"outpoint": f"{x['txid']}:{x['vout']}", "amount": x["amount"], "reason": x["reason"]}
                     for x in plan.left_out],
        "sweeps": sweeps,
        "swept_total": sum(o["amount"] for s in sweeps for o in s["outputs"]),
        "fees_total": sum(s["fee"] for s in sweeps),
        "vault": {"name": vault_file.name, "policy_id": vault.policy_id, "descriptor": vault.descriptor(),
                  "addresses": sorted({o["address"] for s in sweeps for o in s["outputs"]})},
        "files": {"watch_sha256": watch.sha256, "found_sha256": found.sha256, "plan_sha256": plan.sha256,
                  "signed_sha256": signed.sha256},
        "operator": {**{k: v for k, v in operator.public.to_dict().items()
                        if k in ("name", "role", "id", "signing_key", "encryption_key")}},
    }
    record = {**body, "signature": operator.sign(RECORD_TAG + canonical(body)).hex()}
    data = canonical(record) + b"\n"
    verify_record(data)  # what we sign must verify: the same checks an auditor runs
    return data


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedRecord:
    record: "dict[str, Any]"
    sha256: str
    unconfirmed: "tuple[str, ...]"

    @property
    def case(self) -> str:
        return str(self.record["case"])

    def to_dict(self) -> "dict[str, Any]":
        r = self.record
        return {"case": r["case"], "handler": r["handler"], "operator": r["operator"]["name"],
                "operator_key": r["operator"]["signing_key"], "record_sha256": self.sha256,
                "found_total": r["found_total"], "swept_total": r["swept_total"], "fees_total": r["fees_total"],
                "sweeps": [s["txid"] for s in r["sweeps"]], "vault": r["vault"]["name"],
                "policy_id": r["vault"]["policy_id"], "unconfirmed": list(self.unconfirmed)}


def verify_record(data: bytes, *, trusted_key: Optional[str] = None) -> VerifiedRecord:
    """Check a custody record offline; CustodyError names the first thing that is wrong."""
    if len(data) > MAX_RECORD_BYTES:
        raise CustodyError(f"a custody record is at most {MAX_RECORD_BYTES:,} bytes", limit=MAX_RECORD_BYTES)
    try:
        obj = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CustodyError("this is not a custody record (not ASCII JSON)") from None
    if not isinstance(obj, dict) or obj.get("format") != RECORD_FORMAT:
        raise CustodyError("this is not a msigvault custody record")
    try:
        if canonical(obj) + b"\n" != data:
            raise CustodyError("the record is not in its canonical form: it was edited after signing")
        _check_signature(obj, trusted_key)
        unconfirmed = _check_contents(obj)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CustodyError(f"the record is malformed ({type(e).__name__}): it was edited or damaged") from None
    return VerifiedRecord(obj, hashlib.sha256(data).hexdigest(), unconfirmed)


def _check_signature(obj: "dict[str, Any]", trusted_key: Optional[str]) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ..identity import identity_id

    if obj.get("version") != RECORD_VERSION:
        raise CustodyError(f"custody record version {obj.get('version')!r}; this msigvault reads {RECORD_VERSION}")
    op = obj["operator"]
    signing, encryption = bytes.fromhex(op["signing_key"]), bytes.fromhex(op["encryption_key"])
    if len(signing) != 32 or len(encryption) != 32 or identity_id(signing, encryption).hex() != op["id"]:
        raise CustodyError("the operator's identity id does not match its keys")
    if trusted_key is not None and trusted_key.strip().lower() not in (op["signing_key"], op["id"]):
        raise CustodyError("the record is signed by another operator than the identity you trust")
    body = {k: v for k, v in obj.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(signing).verify(bytes.fromhex(obj["signature"]),
                                                          RECORD_TAG + canonical(body))
    except InvalidSignature:
        raise CustodyError("the operator's signature does not verify: the record was altered") from None


def _check_contents(obj: "dict[str, Any]") -> "tuple[str, ...]":
    from ..address import address_from_script
    from ..network import Network
    from ..policy.vault import Vault
    from ..psbt import fields as F

    net = Network.from_name(obj["network"])
    vault = Vault.from_descriptor(obj["vault"]["descriptor"], network=net)
    if vault.policy_id != obj["vault"]["policy_id"]:
        raise CustodyError("the vault descriptor does not have the recorded policy id")
    found = {f"{c['txid']}:{c['vout']}": int(c["amount"]) for c in obj["found"]}
    if len(found) != len(obj["found"]) or sum(found.values()) != obj["found_total"]:
        raise CustodyError("the found coins do not add up to found_total")
    listed_addresses = set(obj["vault"]["addresses"])
    spent, unconfirmed, swept, fees = set(), [], 0, 0
    for s in obj["sweeps"]:
        tx = F.parse_tx(bytes.fromhex(s["raw"]), "sweep transaction")
        if tx.txid()[::-1].hex() != s["txid"]:
            raise CustodyError(f"sweep {s['txid'][:16]}...: the transaction does not hash to its txid")
        ins = [f"{bytes(t)[::-1].hex()}:{n}" for t, n, _, _ in tx.vin]
        if ins != s["inputs"] or any(i not in found or i in spent for i in ins):
            raise CustodyError(f"sweep {s['txid'][:16]}... spends other coins than the found coins it lists")
        spent.update(ins)
        outs = [(address_from_script(bytes(spk), net), amount) for amount, spk in tx.vout]
        if outs != [(o["address"], o["amount"]) for o in s["outputs"]]:
            raise CustodyError(f"sweep {s['txid'][:16]}... pays other outputs than the record lists")
        for o in s["outputs"]:
            if o["address"] not in listed_addresses or vault.address(int(o["vault_index"])) != o["address"]:
                raise CustodyError(f"sweep {s['txid'][:16]}... pays {o['address']}, which is not the listed vault "
                                   "receive address at its index")
        fee = sum(found[i] for i in ins) - sum(a for _, a in outs)
        if fee != s["fee"] or fee < 0:
            raise CustodyError(f"sweep {s['txid'][:16]}...: its fee does not add up")
        swept += sum(a for _, a in outs)
        fees += fee
        height = s["confirmation_height"]
        if height is None:
            unconfirmed.append(s["txid"])
        elif not isinstance(height, int) or isinstance(height, bool) or height < 0:
            raise CustodyError("a confirmation height is a whole number")
    paid = {o["address"] for s in obj["sweeps"] for o in s["outputs"]}
    if sorted(paid) != obj["vault"]["addresses"]:
        raise CustodyError("the record's list of receiving vault addresses is not exactly the addresses the sweeps pay")
    left = {x["outpoint"]: int(x["amount"]) for x in obj["left_out"]}
    if set(left) & spent or set(left) | spent != set(found) or any(found[k] != v for k, v in left.items()):
        raise CustodyError("every found coin must be either swept or listed as left out, once")
    if swept != obj["swept_total"] or fees != obj["fees_total"]:
        raise CustodyError("swept_total or fees_total does not add up")
    if swept + fees + sum(left.values()) != obj["found_total"]:
        raise CustodyError("swept + fees + left out is not what was found")
    return tuple(unconfirmed)


# -- the audit log and the HTML page -----------------------------------------------------------


def audit_summary(verified: VerifiedRecord) -> "dict[str, Any]":
    """What goes into the coordinator's audit log (event ``intake.custody-recorded``)."""
    r = verified.record
    return {"kind": SUMMARY_KIND, "case": r["case"], "record_sha256": verified.sha256,
            "operator_key": r["operator"]["signing_key"], "operator": r["operator"]["name"],
            "signature": r["signature"], "policy_id": r["vault"]["policy_id"],
            "sweep_txids": [s["txid"] for s in r["sweeps"]], "found_total": r["found_total"],
            "swept_total": r["swept_total"], "fees_total": r["fees_total"]}


def record_in_audit_lines(verified: VerifiedRecord, lines: "Sequence[bytes]") -> int:
    """The seq of the audit entry recording this very record; CustodyError if there is none."""
    for line in lines:
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(entry, dict) and entry.get("event") == "intake.custody-recorded" and \
                isinstance(entry.get("data"), dict) and entry["data"].get("record_sha256") == verified.sha256:
            return int(entry["seq"])
    raise CustodyError("the audit log holds no entry for this record (no intake.custody-recorded entry with its hash)")


def to_html(data: bytes) -> bytes:
    """A self-contained HTML page of a verified record: the facts in tables, the signed JSON in full."""
    v = verify_record(data)
    r = v.record
    e = html.escape

    def rows(items: "Sequence[Sequence[Any]]") -> str:
        return "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in items)

    found = rows([(c["address"], f"{c['txid']}:{c['vout']}", c["amount"], c["height"]) for c in r["found"]])
    sweeps = rows([(s["txid"], s["confirmation_height"], s["fee"],
                    ", ".join(f"{o['address']} ({o['amount']})" for o in s["outputs"])) for s in r["sweeps"]])
    left = rows([(x["outpoint"], x["amount"], x["reason"]) for x in r["left_out"]])
    times = rows(sorted(r["times"].items()))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Custody record {e(r['case'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{border:1px solid #999;padding:.2em .4em;
font-family:monospace;font-size:90%}}table{{border-collapse:collapse}}pre{{white-space:pre-wrap;word-break:break-all;
font-size:75%}}</style></head><body>
<h1>Chain-of-custody record</h1>
<table><tr><th>case</th><td>{e(r['case'])}</td></tr><tr><th>handler</th><td>{e(r['handler'])}</td></tr>
<tr><th>source</th><td>{e(r['source']['description'])} ({e(r['source']['summary'])})</td></tr>
<tr><th>network</th><td>{e(r['network'])}</td></tr>
<tr><th>operator</th><td>{e(r['operator']['name'])}, signing key {e(r['operator']['signing_key'])}</td></tr>
<tr><th>receiving vault</th><td>{e(r['vault']['name'])}, policy id {e(r['vault']['policy_id'])}</td></tr>
<tr><th>found / swept / fees (sats)</th><td>{r['found_total']} / {r['swept_total']} / {r['fees_total']}</td></tr>
<tr><th>record SHA-256</th><td>{v.sha256}</td></tr></table>
<h2>Times</h2><table>{times}</table>
<h2>Coins found</h2><table><tr><th>address</th><th>outpoint</th><th>sats</th><th>height</th></tr>{found}</table>
<h2>Sweep transactions</h2><table><tr><th>txid</th><th>confirmed at height</th><th>fee</th><th>paid to</th></tr>{sweeps}</table>
<h2>Left out</h2><table><tr><th>outpoint</th><th>sats</th><th>reason</th></tr>{left}</table>
<h2>The signed record</h2>
<p>This page is a rendering. The evidence is the record below, byte for byte (save it without the
surrounding page, as one line ending in a newline): <code>msigvault intake verify RECORD</code> checks its
signature, transactions and totals offline.</p>
<pre id="record">{e(data.decode('ascii').rstrip(chr(10)))}</pre>
</body></html>
"""
    return page.encode()
