"""Key-health checks: dated challenges, offline answers with the vault key, and a report of who
passed, failed or has not answered; altered challenges and foreign keys never pass."""

import dataclasses

import pytest

from msigvault import Vault
from msigvault.network import Network
from msigvault.reserves import health
from msigvault.reserves.errors import HealthCheckError
from msigvault.testing.keyholders import TestKeyholder

NET = Network.REGTEST
HOLDERS = [TestKeyholder.from_label(f"health-{i}") for i in range(3)]


@pytest.fixture(params=["wsh", "tr", "sh"])
def vault(request):
    return Vault.multisig(2, [h.cosigner(request.param) for h in HOLDERS], script=request.param, network=NET)


def test_signers_pass_and_the_silent_one_is_missing(vault):
    chs = health.issue(vault, date="2026-12-01", index=3)
    assert [c.fingerprint for c in chs] == [h.fingerprint.hex() for h in HOLDERS]
    assert len({c.nonce for c in chs}) == 3 and all("2026-12-01" in c.message for c in chs)
    answers = [health.respond(chs[0], vault, HOLDERS[0].root), health.respond(chs[2], vault, HOLDERS[2].root)]
    rep = health.report(vault, chs, answers, as_of="2026-12-08")
    assert [(r.status, r.days_waiting) for r in rep.rows] == [("passed", 0), ("missing", 7), ("passed", 0)]
    assert not rep.passed and rep.to_dict()["keyholders"][1]["status"] == "missing"
    assert "MISSING" in rep.text()


def test_round_trip_through_dicts(vault):
    chs = health.issue(vault, date="2026-12-01")
    again = [health.Challenge.from_dict(c.to_dict()) for c in chs]
    assert again == chs
    r = health.respond(again[1], vault, HOLDERS[1].root)
    assert health.Response.from_dict(r.to_dict()) == r
    assert health.report(vault, again, [r], as_of="2026-12-01").rows[1].status == "passed"


def test_a_signature_by_another_key_fails(vault):
    chs = health.issue(vault, date="2026-12-01")
    forged = health.respond(chs[0], vault, HOLDERS[0].root)
    wrong = health.Response(chs[1].fingerprint, chs[1].nonce, forged.signature)  # alice answers for bob
    rep = health.report(vault, chs, [wrong], as_of="2026-12-02")
    assert rep.rows[1].status == "failed" and "does not verify" in rep.rows[1].reason


def test_an_answer_to_another_nonce_fails(vault):
    old = health.issue(vault, date="2026-12-01")
    new = [dataclasses.replace(c, nonce="0" * 32) for c in old]
    rep = health.report(vault, new, [health.respond(old[0], vault, HOLDERS[0].root)], as_of="2026-12-01")
    assert rep.rows[0].status == "failed" and "nonce" in rep.rows[0].reason


def test_an_altered_challenge_address_is_refused_and_fails(vault):
    chs = health.issue(vault, date="2026-12-01")
    other = health.key_address(vault, HOLDERS[1].fingerprint, 0, 0)[1]
    altered = dataclasses.replace(chs[0], address=other)
    with pytest.raises(HealthCheckError, match="altered"):
        health.respond(altered, vault, HOLDERS[0].root)
    rep = health.report(vault, [altered, *chs[1:]], [health.respond(chs[0], vault, HOLDERS[0].root)],
                        as_of="2026-12-01")
    assert rep.rows[0].status == "failed"


def test_respond_refuses_another_keyholders_challenge(vault):
    chs = health.issue(vault, date="2026-12-01")
    with pytest.raises(HealthCheckError, match="not for this key"):
        health.respond(chs[1], vault, HOLDERS[0].root)


def test_malformed_inputs_are_refused():
    v = Vault.multisig(2, [h.cosigner("wsh") for h in HOLDERS], script="wsh", network=NET)
    with pytest.raises(HealthCheckError, match="YYYY-MM-DD"):
        health.issue(v, date="01/12/2026")
    with pytest.raises(HealthCheckError, match="nonce"):
        health.issue(v, date="2026-12-01", nonce="xyz")
    with pytest.raises(HealthCheckError):
        health.Challenge.from_dict({"kind": "something else"})
    bad = health.issue(v, date="2026-12-01")[0].to_dict() | {"index": -1}
    with pytest.raises(HealthCheckError, match="malformed"):
        health.Challenge.from_dict(bad)


def test_a_planted_bad_answer_does_not_make_a_keyholder_fail(vault):
    """Whoever can drop a file among the responses cannot turn a keyholder's valid answer into a
    failure by putting a bad one first (nor make anyone pass: see the tests above)."""
    chs = health.issue(vault, date="2026-12-01")
    good = health.respond(chs[0], vault, HOLDERS[0].root)
    other = health.respond(chs[1], vault, HOLDERS[1].root)
    planted = health.Response(good.fingerprint, good.nonce, other.signature)
    rep = health.report(vault, chs, [planted, good], as_of="2026-12-01")
    assert rep.rows[0].status == "passed"
    alone = health.report(vault, chs, [planted], as_of="2026-12-01")
    assert alone.rows[0].status == "failed" and "does not verify" in alone.rows[0].reason
