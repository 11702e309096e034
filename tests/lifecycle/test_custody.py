"""The custody record: any one-byte edit fails verification; a re-signed forgery (by the operator or
anyone) that changes what was found, where it went or the vault fails on its contents; the HTML
page escapes everything; the coordinator records only summaries of registered vaults."""

from __future__ import annotations

import json

import pytest

from msigvault.backends.regtest import RegtestBackend
from msigvault.identity import IdentityKey
from msigvault.lifecycle.custody import (RECORD_TAG, CaseInfo, audit_summary, build_record, canonical,
                                         record_in_audit_lines, to_html, verify_record)
from msigvault.lifecycle.errors import CustodyError
from msigvault.lifecycle.sweep import confirmation_heights, sign_plan
from msigvault.regtest import RegtestChain

from .conftest import build_plan, secret_key, wif

OPERATOR = IdentityKey.generate("operator", "coordinator")


@pytest.fixture(scope="module")
def record():
    with RegtestChain() as chain:
        chain.mine(110)
        b = build_plan(chain, f"{wif(secret_key('custody-a'))}\n{wif(secret_key('custody-b'))}\n",
                       {"wif0/p2wpkh": [100_000, 20_000], "wif1/p2sh-p2wpkh": [60_000], "wif1/p2pkh": [500]},
                       fee_rate=3)
        with b.source() as src:
            signed = sign_plan(b.plan, src, b.vault_file, signed_at="t3", policy_id=b.vault_file.vault.policy_id)
        backend = RegtestBackend(chain)
        for t in signed.transactions:
            backend.broadcast(t.raw)
        heights = confirmation_heights(signed, backend)
        data = build_record(CaseInfo("CASE-1 <script>alert(1)</script>", "Handler & Co", "exhibit \"7\"",
                                     "2026-11-30"), b.watch, b.found, b.plan, signed, b.vault_file, heights, OPERATOR,
                            recorded_at="t4")
        return data, b


def _resign(obj: dict, key: IdentityKey = OPERATOR) -> bytes:
    obj = {**obj, "operator": {**obj["operator"], **{k: v for k, v in key.public.to_dict().items()
                                                     if k in ("name", "role", "id", "signing_key", "encryption_key")}}}
    body = {k: v for k, v in obj.items() if k != "signature"}
    obj["signature"] = key.sign(RECORD_TAG + canonical(body)).hex()
    return canonical(obj) + b"\n"


def test_the_record_verifies_and_names_what_happened(record):
    data, b = record
    v = verify_record(data, trusted_key=OPERATOR.public.signing_key.hex())
    r = v.record
    assert r["found_total"] == 180_500 and len(r["found"]) == 4
    assert [x["amount"] for x in r["left_out"]] == [500]  # uneconomical at 3 sat/vB
    assert r["swept_total"] + r["fees_total"] + 500 == 180_500
    assert all(s["confirmation_height"] is not None for s in r["sweeps"])
    assert r["vault"]["policy_id"] == b.vault_file.vault.policy_id
    assert v.unconfirmed == ()


def test_every_one_byte_edit_fails(record):
    data, _ = record
    for i in range(len(data)):
        for new in {data[i] ^ 0x01, ord("0") if data[i] != ord("0") else ord("1")}:
            edited = data[:i] + bytes([new]) + data[i + 1:]
            with pytest.raises(CustodyError):
                verify_record(edited)
    for edited in (data[:-1], data + b"\n", b" " + data, data[:len(data) // 2]):
        with pytest.raises(CustodyError):
            verify_record(edited)


def _edit(data: bytes, fn) -> dict:
    obj = json.loads(data)
    fn(obj)
    return obj


@pytest.mark.parametrize("what,fn", [
    ("another output address", lambda o: o["sweeps"][0]["outputs"][0].update(
        address="bcrt1qa2424242424242424242424242424242q4e8ve")),
    ("a hidden coin", lambda o: (o["found"].pop(), o.update(found_total=o["found_total"] - 500),
                                 o["left_out"].clear())),
    ("a larger total", lambda o: o.update(found_total=o["found_total"] + 1)),
    ("a smaller fee", lambda o: (o["sweeps"][0].update(fee=o["sweeps"][0]["fee"] - 1),
                                 o.update(fees_total=o["fees_total"] - 1))),
    ("another policy id", lambda o: o["vault"].update(policy_id="00" * 32)),
    ("another vault index", lambda o: o["sweeps"][0]["outputs"][0].update(vault_index=7)),
    ("a listed address not paid", lambda o: o["vault"]["addresses"].append("bcrt1qextra")),
    ("a negative height", lambda o: o["sweeps"][0].update(confirmation_height=-1)),
])
def test_a_resigned_forgery_fails_on_its_contents(record, what, fn):
    data, _ = record
    with pytest.raises(CustodyError):
        verify_record(_resign(_edit(data, fn)))


def test_another_operator_is_refused_when_the_operator_is_pinned(record):
    data, _ = record
    other = IdentityKey.generate("impostor", "coordinator")
    forged = _resign(json.loads(data), other)
    verify_record(forged)  # a valid record by someone else...
    with pytest.raises(CustodyError, match="another operator"):
        verify_record(forged, trusted_key=OPERATOR.public.signing_key.hex())
    obj = json.loads(data)
    obj["operator"]["id"] = "00" * 16
    with pytest.raises(CustodyError):
        verify_record(canonical(obj) + b"\n")


def test_the_html_page_escapes_everything_and_holds_the_record(record):
    data, _ = record
    page = to_html(data).decode()
    assert "<script>" not in page and "&lt;script&gt;" in page and "Handler &amp; Co" in page
    assert "src=" not in page and "href=" not in page  # self-contained
    start = page.index('<pre id="record">') + len('<pre id="record">')
    import html

    assert html.unescape(page[start:page.index("</pre>", start)]).encode() + b"\n" == data
    with pytest.raises(CustodyError):
        to_html(data.replace(b"CASE-1", b"CASE-2"))


def test_the_coordinator_records_a_summary_of_a_registered_vault_only(record, tmp_path):
    from msigvault.coordinator.audit import Identity
    from msigvault.coordinator.db import Database
    from msigvault.coordinator.errors import CoordinatorError
    from msigvault.coordinator.sessions import Coordinator

    data, b = record
    v = verify_record(data)
    co = Coordinator(Database.open(f"sqlite:///{tmp_path / 'c.sqlite'}"), Identity.generate())
    with pytest.raises(CoordinatorError):
        co.record_custody(audit_summary(v))  # the vault is not registered with this coordinator
    with pytest.raises(CoordinatorError):
        co.record_custody({"kind": "something else", "policy_id": b.vault_file.vault.policy_id})
    co.register_vault(b.vault_file)
    co.record_custody(audit_summary(v))
    co.verify_log()
    assert record_in_audit_lines(v, co.audit_lines()) == co.verify_log().count - 1
    other = verify_record(_resign(_edit(data, lambda o: o.update(case="CASE-2"))))
    with pytest.raises(CustodyError):
        record_in_audit_lines(other, co.audit_lines())


def test_case_information_is_bounded():
    with pytest.raises(CustodyError):
        CaseInfo("", "h", "d")
    with pytest.raises(CustodyError):
        CaseInfo("c", "h", "x" * 3000)


def test_intake_verify_shows_a_forged_records_text_escaped(record, tmp_path):
    """Anyone can sign a record with their own identity: its name, case and vault name are theirs
    to choose. CR, bidi overrides or C1 controls there must not redraw the auditor's screen (hide
    the signing key to compare, or show another)."""
    from click.testing import CliRunner

    from msigvault.cli import cli

    data, _ = record
    obj = json.loads(data)
    obj["operator"] = {**obj["operator"], "name": "Trusted Op (key 00ff)\r\u202e\x9b2K"}
    obj["case"] = "CASE-1\rCASE-2"
    body = {k: v for k, v in obj.items() if k != "signature"}
    obj["signature"] = OPERATOR.sign(RECORD_TAG + canonical(body)).hex()
    forged = tmp_path / "forged.record"
    forged.write_bytes(canonical(obj) + b"\n")
    verify_record(forged.read_bytes())  # it verifies: the signature is the forger's own
    result = CliRunner().invoke(cli, ["intake", "verify", str(forged)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not [c for c in ("\r", "\u202e", "\x9b") if c in result.output], repr(result.output)
    assert "Trusted Op (key 00ff)\\r\\u202e\\x9b2K" in result.output and "CASE-1\\rCASE-2" in result.output
    assert OPERATOR.public.signing_key.hex() in result.output
