"""A key-health report recorded in the coordinator's audit log: signed, hash-chained, and an
edit of the recorded result is caught by verification."""

import json

import pytest
import sqlalchemy as sa

from msigvault.coordinator import db as D
from msigvault.coordinator.audit import Identity
from msigvault.coordinator.db import Database
from msigvault.coordinator.errors import CoordinatorError
from msigvault.coordinator.sessions import Coordinator
from msigvault.errors import MsigvaultError
from msigvault.policy.registration import Registration
from msigvault.reserves import health
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile
from msigvault import Network, Vault

HOLDERS = [TestKeyholder.from_label(f"audit-health-{i}") for i in range(3)]


@pytest.fixture
def setup(tmp_path):
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in HOLDERS], script="wsh", network=Network.REGTEST)
    vf = VaultFile(vault, "reserve", registrations=tuple(Registration.create(vault, h.root, name="reserve")
                                                         for h in HOLDERS))
    co = Coordinator(Database.open(f"sqlite:///{tmp_path / 'c.sqlite'}"), Identity.generate())
    co.register_vault(vf)
    chs = health.issue(vault, date="2026-12-01")
    rep = health.report(vault, chs, [health.respond(chs[0], vault, HOLDERS[0].root)], as_of="2026-12-03")
    return co, vault, rep


def test_the_report_is_an_audit_entry_that_verifies(setup):
    co, _, rep = setup
    co.record_health_check(rep.to_dict())
    entries = [e for e in co.audit_entries() if e["event"] == "health.reported"]
    assert len(entries) == 1 and entries[0]["data"] == rep.to_dict()
    assert co.verify_log().count == 3


def test_an_edited_result_is_caught(setup):
    co, _, rep = setup
    co.record_health_check(rep.to_dict())
    with co.db.write() as conn:
        row = conn.execute(sa.select(D.audit_log).where(D.audit_log.c.event == "health.reported")).one()
        forged = bytes(row.line).replace(b'"missing"', b'"passed"')
        assert forged != bytes(row.line)
        conn.execute(sa.update(D.audit_log).where(D.audit_log.c.seq == row.seq).values(line=forged))
    with pytest.raises(MsigvaultError):
        co.verify_log()


def test_only_reports_of_registered_vaults_are_recorded(setup):
    co, _, rep = setup
    with pytest.raises(CoordinatorError, match="not a key-health report"):
        co.record_health_check({"kind": "something"})
    with pytest.raises(MsigvaultError):
        co.record_health_check({**rep.to_dict(), "policy_id": "0" * 32})
    assert json.dumps(rep.to_dict())  # plain JSON data
