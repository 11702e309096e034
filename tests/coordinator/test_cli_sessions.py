"""msigvault session ... and msigvault audit ...: a 2-of-3 ceremony through the commands.

Keyholders sign with the API (their laptops are tested elsewhere); everything the coordinator
does goes through the command line, in this process (click's runner) to keep it quick.
"""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from msigvault.cli import cli
from msigvault.psbt.psbt import Psbt
from msigvault.regtest import RegtestChain


def run(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_help_does_not_import_sqlalchemy():
    code = "import sys; from msigvault.cli import main; sys.argv=['msigvault','--help']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\n" \
           "assert 'sqlalchemy' not in sys.modules and 'alembic' not in sys.modules, 'imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_ceremony_and_audit_through_the_cli(kit, tmp_path):
    vf = kit.make_vault_file("wsh")
    vault = tmp_path / "vault.json"
    vf.save(vault)
    chain_dir = tmp_path / "chain"
    run("regtest", "init", chain_dir)
    with RegtestChain(datadir=chain_dir) as chain:
        psbt = kit.funded_psbt(chain, vf)
    (tmp_path / "spend.psbt").write_bytes(psbt.serialize())
    out = json.loads(run("session", "new", vault, tmp_path / "spend.psbt", "--memo", "rent", "--proposed-by", "ops",
                         "--expires", "24h", "--json").output)
    sid = out["id"]
    assert out["status"] == "open" and out["signatures_needed"] == 2
    assert (tmp_path / "vault.sessions.sqlite").exists() and (tmp_path / "vault.coordinator.key").stat().st_mode & 0o077 == 0
    shown = run("session", "show", sid[:6], "--vault", vault).output
    assert "0 of 2" in shown and "requested" in shown and "PAY" in shown
    alice, bob, carol = kit.HOLDERS
    for h in (alice, carol):
        (tmp_path / f"{h.label}.psbt").write_bytes(kit.signed_copy(vf, psbt, h))
    r = json.loads(run("session", "submit", sid, tmp_path / f"{alice.label}.psbt", "--vault", vault, "--json").output)
    assert r["outcome"] == "accepted" and r["status"] == "open"
    # a copy for another session is refused: exit code 2, one line, and recorded
    bad = run("session", "submit", sid, tmp_path / "spend.psbt", "--vault", vault, ok=False)
    assert bad.exit_code == 2 and "refused and recorded" in bad.output
    r = json.loads(run("session", "submit", sid, tmp_path / f"{carol.label}.psbt", "--vault", vault,
                       "--chain", chain_dir, "--json").output)
    assert r["status"] == "confirmed"
    listed = json.loads(run("session", "list", "--vault", vault, "--json").output)
    assert [s["id"] for s in listed] == [sid] and listed[0]["signed"] == sorted(
        [alice.fingerprint.hex(), carol.fingerprint.hex()], key=[h.fingerprint.hex() for h in kit.HOLDERS].index)
    # the auditor's bundle verifies offline, and fails after a one-byte edit
    export = tmp_path / "audit.jsonl"
    run("audit", "export", "-o", export, "--vault", vault)
    verified = json.loads(run("audit", "verify", export, "--json").output)
    assert verified["ok"] and verified["vaults"][0]["policy_id"] == vf.vault.policy_id
    run("audit", "verify", "--vault", vault)
    data = bytearray(export.read_bytes())
    data[len(data) // 2] ^= 1
    export.write_bytes(bytes(data))
    failed = run("audit", "verify", export, ok=False)
    assert failed.exit_code == 2 and "entry" in failed.output


def test_cancel_finalize_and_errors(kit, tmp_path):
    vf = kit.make_vault_file("tr")
    vault = tmp_path / "v.json"
    vf.save(vault)
    db = f"sqlite:///{tmp_path / 'other.sqlite'}"
    key = tmp_path / "coord.key"
    with RegtestChain() as chain:
        chain.mine(101)
        psbt = kit.funded_psbt(chain, vf)
    (tmp_path / "p.psbt").write_bytes(psbt.serialize())
    sid = json.loads(run("session", "new", vault, tmp_path / "p.psbt", "--db", db, "--coordinator-key", key,
                         "--json").output)["id"]
    early = run("session", "finalize", sid, "--db", db, "--coordinator-key", key, ok=False)
    assert early.exit_code == 2 and "2 more needed" in early.output
    for h in kit.HOLDERS[:2]:
        (tmp_path / "s.psbt").write_bytes(kit.signed_copy(vf, psbt, h))
        run("session", "submit", sid, tmp_path / "s.psbt", "--db", db, "--coordinator-key", key)
    fin = json.loads(run("session", "finalize", sid, "--db", db, "--coordinator-key", key, "--tx", tmp_path / "t.hex",
                         "--json").output)
    assert fin["status"] == "finalized" and (tmp_path / "t.hex").read_text().strip()
    nob = run("session", "broadcast", sid, "--db", db, "--coordinator-key", key, ok=False)
    assert nob.exit_code == 2 and "--backend" in nob.output
    run("session", "cancel", sid, "--reason", "changed our mind", "--db", db, "--coordinator-key", key)
    assert json.loads(run("session", "show", sid, "--db", db, "--json").output)["status"] == "cancelled"
    missing = run("session", "show", "ffff0000", "--db", db, ok=False)
    assert missing.exit_code == 2 and "no session" in missing.output
    nodb = run("session", "list", ok=False)
    assert nodb.exit_code == 2 and "--db" in nodb.output
    wrong_key = run("session", "cancel", sid, "--db", db, "--coordinator-key", tmp_path / "new.key", ok=False)
    assert wrong_key.exit_code == 2 and "not authorised" in wrong_key.output
    assert Psbt.parse((tmp_path / "p.psbt").read_bytes())  # the input file is untouched


def test_refuse_unreachable_request_and_config_through_the_cli(kit, tmp_path):
    from msigvault.coordinator.audit import refusal_statement, sign_statement
    from msigvault.testing.utxos import synthetic_utxo

    vf = kit.make_vault_file("wsh")
    vault = tmp_path / "vault.json"
    vf.save(vault)
    utxos = [synthetic_utxo(vf.vault, 100_000, index=0, seed="cli-refuse")]
    psbt = vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=2.0, change_index=0)
    (tmp_path / "p.psbt").write_bytes(psbt.serialize())
    alice, bob, carol = (h.fingerprint.hex() for h in kit.HOLDERS)
    sid = json.loads(run("session", "new", vault, tmp_path / "p.psbt", "--identity",
                         f"{carol}={kit.IDENTITIES[carol].public_hex}", "--json").output)["id"]
    s = json.loads(run("session", "refuse", sid, alice, "--reason", "fee too high", "--vault", vault,
                       "--json").output)
    assert s["cosigners"][0] == {**s["cosigners"][0], "fingerprint": alice, "state": "refused",
                                 "reason": "fee too high"}
    s = json.loads(run("session", "unreachable", sid, bob, "--note", "phone off", "--vault", vault, "--json").output)
    assert [c["state"] for c in s["cosigners"]] == ["refused", "unreachable", "requested"]
    shown = run("session", "show", sid, "--vault", vault).output
    assert f"{alice}  refused: fee too high" in shown and f"{bob}  unreachable" in shown
    s = json.loads(run("session", "request", sid, alice, "--note", "asked again", "--vault", vault, "--json").output)
    assert s["cosigners"][0]["state"] == "requested"
    # carol's identity key is registered: her refusal needs her identity signature over the statement
    unsigned = run("session", "refuse", sid, carol, "--reason", "no", "--vault", vault, ok=False)
    assert unsigned.exit_code == 2 and "identity signature" in unsigned.output
    sig = sign_statement(kit.IDENTITIES[carol], refusal_statement(sid, carol, "no"))
    s = json.loads(run("session", "refuse", sid, carol, "--reason", "no", "--identity-signature", sig,
                       "--vault", vault, "--json").output)
    assert s["cosigners"][2]["state"] == "refused"
    bad = run("session", "refuse", sid, "xyz", "--reason", "r", "--vault", vault, ok=False)
    assert bad.exit_code == 2 and "8 hex digits" in bad.output
    # configuration: shown, set (JSON or text), audited; a bad key is refused
    assert run("session", "config", "--vault", vault).output.strip() == "no configuration"
    run("session", "config", "confirmations", "3", "--vault", vault)
    run("session", "config", "operator", "ops team", "--vault", vault)
    assert json.loads(run("session", "config", "--vault", vault, "--json").output) == {
        "confirmations": 3, "operator": "ops team"}
    bad = run("session", "config", "Bad Key", "1", "--vault", vault, ok=False)
    assert bad.exit_code == 2 and "configuration key" in bad.output
    export = tmp_path / "audit.jsonl"
    run("audit", "export", "-o", export, "--vault", vault)
    entries = [json.loads(line) for line in export.read_bytes().splitlines()[1:]]
    events = [(e["event"], e["actor"]) for e in entries if e["event"].startswith(("cosigner.", "config."))]
    assert events == [("cosigner.requested", "coordinator")] * 3 + [
        ("cosigner.refused", f"cosigner:{alice}"), ("cosigner.unreachable", "coordinator"),
        ("cosigner.requested", "coordinator"), ("cosigner.refused", f"cosigner:{carol}"),
        ("config.changed", "coordinator"), ("config.changed", "coordinator")]
    assert json.loads(run("audit", "verify", export, "--json").output)["ok"]


def test_recover_and_expire_through_the_cli(kit, tmp_path):
    import time

    vf = kit.make_vault_file("wsh")
    vault = tmp_path / "vault.json"
    vf.save(vault)
    chain_dir = tmp_path / "chain"
    run("regtest", "init", chain_dir)
    with RegtestChain(datadir=chain_dir) as chain:
        psbt = kit.funded_psbt(chain, vf)
        later = kit.funded_psbt(chain, vf, amounts=(70_000,), pay=30_000, index=1)
    (tmp_path / "p.psbt").write_bytes(psbt.serialize())
    (tmp_path / "later.psbt").write_bytes(later.serialize())
    sid = json.loads(run("session", "new", vault, tmp_path / "p.psbt", "--id", "pay-1", "--json").output)["id"]
    assert sid == "pay-1"
    for h in kit.HOLDERS[:2]:  # no backend: it stops at finalized (as after an outage of the node)
        (tmp_path / "s.psbt").write_bytes(kit.signed_copy(vf, psbt, h))
        run("session", "submit", sid, tmp_path / "s.psbt", "--vault", vault)
    assert json.loads(run("session", "show", sid, "--vault", vault, "--json").output)["status"] == "finalized"
    short = json.loads(run("session", "new", vault, tmp_path / "later.psbt", "--expires", "1s", "--json").output)["id"]
    assert run("session", "expire", "--vault", vault).output.strip() == "nothing has expired"
    recovered = json.loads(run("session", "recover", "--vault", vault, "--chain", chain_dir, "--json").output)
    assert {s["id"]: s["status"] for s in recovered} == {sid: "confirmed", short: "open"}
    time.sleep(1.2)
    assert "OVERDUE: expired at" in run("session", "show", short, "--vault", vault).output
    assert json.loads(run("session", "expire", "--vault", vault, "--json").output) == {"expired": [short]}
    assert "OVERDUE" not in run("session", "show", short, "--vault", vault).output
    assert json.loads(run("session", "show", short, "--vault", vault, "--json").output)["status"] == "expired"
    assert run("session", "recover", "--vault", vault, "--chain", chain_dir).output.strip() == \
        "no session has pending steps"
    bad = run("session", "new", vault, tmp_path / "later.psbt", "--id", "Not An Id", ok=False)
    assert bad.exit_code == 2 and "session id" in bad.output


def test_a_second_coordinator_key_is_authorised_through_the_cli(kit, tmp_path):
    from msigvault.testing.utxos import synthetic_utxo

    vf = kit.make_vault_file("wsh")
    vault = tmp_path / "vault.json"
    vf.save(vault)
    psbt = vf.vault.create_psbt([synthetic_utxo(vf.vault, 100_000, index=0, seed="two-coordinators")],
                                [(kit.PAYEE, 50_000)], fee_rate=2.0, change_index=0)
    (tmp_path / "p.psbt").write_bytes(psbt.serialize())
    sid = json.loads(run("session", "new", vault, tmp_path / "p.psbt", "--json").output)["id"]
    first = run("session", "coordinator-key", "--vault", vault).output.strip()
    second_key = tmp_path / "site-b.key"
    second = json.loads(run("session", "coordinator-key", "--coordinator-key", second_key, "--json").output)
    assert len(first) == 64 and second["coordinator_key"] != first and second_key.stat().st_mode & 0o077 == 0
    (tmp_path / "a.psbt").write_bytes(kit.signed_copy(vf, psbt, kit.HOLDERS[0]))
    submit = ("session", "submit", sid, tmp_path / "a.psbt", "--vault", vault, "--coordinator-key", second_key)
    refused = run(*submit, ok=False)
    assert refused.exit_code == 2 and "session authorize-key" in refused.output
    run("session", "authorize-key", second["coordinator_key"], "--note", "site B", "--vault", vault)
    assert json.loads(run(*submit, "--json").output)["outcome"] == "accepted"
    verified = json.loads(run("audit", "verify", "--vault", vault, "--trust-key", first, "--json").output)
    assert sorted(verified["coordinator_keys"]) == sorted([first, second["coordinator_key"]])
    bad = run("session", "authorize-key", "abcd", "--vault", vault, ok=False)
    assert bad.exit_code == 2 and "64 lowercase hex" in bad.output


def test_a_hostile_reason_or_memo_cannot_draw_over_the_operators_screen(kit, tmp_path):
    """A refusal reason comes from a keyholder site over the network and a memo from an operator: before, both
    reached the operator's terminal raw (an escape sequence could erase or rewrite the session's state)."""
    from msigvault.testing.utxos import synthetic_utxo

    vf = kit.make_vault_file("wsh")
    vault = tmp_path / "vault.json"
    vf.save(vault)
    utxos = [synthetic_utxo(vf.vault, 100_000, index=0, seed="cli-hostile")]
    (tmp_path / "p.psbt").write_bytes(vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=2.0,
                                                           change_index=0).serialize())
    alice = kit.HOLDERS[0].fingerprint.hex()
    sid = json.loads(run("session", "new", vault, tmp_path / "p.psbt", "--memo", "rent\x1b[2J", "--json").output)["id"]
    run("session", "refuse", sid, alice, "--reason", "no\r\x1b[1A    deadbeef  signed\u202e", "--vault", vault)
    for shown in (run("session", "show", sid, "--vault", vault).output,
                  run("session", "list", "--vault", vault).output):
        assert "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
    shown = run("session", "show", sid, "--vault", vault).output
    assert "refused: no\\r\\x1b[1A" in shown and "memo: rent\\x1b[2J" in shown
