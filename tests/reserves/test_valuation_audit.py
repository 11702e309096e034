"""A day's valuation recorded in the coordinator database is also a signed, hash-chained audit
entry (valuation.recorded), written in the same transaction as the series rows: an edited close is
caught, a vault the coordinator never registered is refused, and nothing is half-written."""

import datetime as dt

import pytest
import sqlalchemy as sa

from msigvault import Network, Vault
from msigvault.coordinator import db as D
from msigvault.coordinator.audit import Identity
from msigvault.coordinator.db import Database
from msigvault.coordinator.errors import CoordinatorError
from msigvault.errors import MsigvaultError
from msigvault.coordinator.sessions import Coordinator
from msigvault.policy.registration import Registration
from msigvault.reserves import prices as P
from msigvault.reserves import valuation as V
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile

HOLDERS = [TestKeyholder.from_label(f"audit-value-{i}") for i in range(3)]
DAY = dt.date(2026, 11, 7)


@pytest.fixture
def setup(tmp_path):
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in HOLDERS], script="wsh", network=Network.REGTEST)
    vf = VaultFile(vault, "treasury", registrations=tuple(Registration.create(vault, h.root, name="treasury")
                                                          for h in HOLDERS))
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    co = Coordinator(Database.open(url), Identity.generate())
    co.register_vault(vf)
    holdings = V.Holdings(321, "ab" * 32, None, "test", (V.VaultHoldings("treasury", vault.policy_id, 150_000_000, 2),))
    return co, url, V.valuation_of(DAY, holdings, P.sample(), ["BTC/USD", "BTC/EUR"])


def test_the_day_is_a_series_row_and_an_audit_entry_that_verifies(setup):
    co, _, dv = setup
    store = V.DatabaseSeries(co.db)
    store.record(dv, coordinator=co)
    (entry,) = [e for e in co.audit_entries() if e["event"] == "valuation.recorded"]
    assert entry["data"] == {**dv.to_dict(), "replaced": False}
    close = next(line.split(",")[2] for line in P.sample_path().read_text().splitlines()
                 if line.startswith(f"BTC/USD,{DAY.isoformat()},"))
    assert entry["data"]["prices"]["BTC/USD"]["close"] == close and entry["data"]["height"] == 321
    assert store.days() == [dv]
    store.record(dv, replace=True, coordinator=co)
    assert [e["data"]["replaced"] for e in co.audit_entries() if e["event"] == "valuation.recorded"] == [False, True]
    co.verify_log()


def test_an_edited_close_is_caught(setup):
    co, _, dv = setup
    V.DatabaseSeries(co.db).record(dv, coordinator=co)
    with co.db.write() as conn:
        row = conn.execute(sa.select(D.audit_log).where(D.audit_log.c.event == "valuation.recorded")).one()
        close = str(dv.price("BTC/USD").close).encode()
        forged = bytes(row.line).replace(b'"' + close + b'"', b'"1' + close + b'"')
        assert forged != bytes(row.line)
        conn.execute(sa.update(D.audit_log).where(D.audit_log.c.seq == row.seq).values(line=forged))
    with pytest.raises(MsigvaultError):
        co.verify_log()


def test_unregistered_vaults_and_other_documents_are_refused_and_nothing_is_written(setup):
    co, _, dv = setup
    store = V.DatabaseSeries(co.db)
    foreign = V.Holdings(321, "ab" * 32, None, "test", (V.VaultHoldings("other", "0" * 64, 1, 1),))
    with pytest.raises(CoordinatorError, match="no vault with policy id"):
        store.record(V.DayValuation(DAY, foreign, dv.prices), coordinator=co)
    with pytest.raises(CoordinatorError, match="not a day's valuation"):
        co.record_valuation({"kind": "something"})
    assert store.days() == [] and [e["event"] for e in co.audit_entries()][-1] == "vault.registered"


def test_the_rows_roll_back_when_the_entry_cannot_be_written(setup):
    co, url, dv = setup
    read_only = Coordinator(Database.open(url), None)  # no key: it cannot sign an entry
    store = V.DatabaseSeries(read_only.db)
    with pytest.raises(CoordinatorError, match="without its key"):
        store.record(dv, coordinator=read_only)
    assert store.days() == []  # the series rows were in the same transaction
    with pytest.raises(V.SeriesError, match="another database"):
        V.DatabaseSeries(Database.open(url + "-other")).record(dv, coordinator=co)
