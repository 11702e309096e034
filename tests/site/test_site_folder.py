"""The shared-folder ceremony: no HTTP anywhere. The coordinator's ``site folder-sync`` writes each site's sealed
requests into the folder and takes their sealed answers in through the service's checks; the sites pull and
push with ``--folder``. A tampered request, an envelope planted in another site's outbox and a replayed one are
refused (and audited); the session finalizes and is broadcast; the audit export verifies."""

from __future__ import annotations

import json
import shutil

import pytest

from msigvault.regtest import RegtestChain
from msigvault.vaultfile import load_vault_file

from .conftest import KEY_PASSPHRASE, PAYEE, PAYEE_SCRIPT, cli, cli_json

SID = "folder-rent"


def _sync(world, *extra):
    return cli_json("site", "folder-sync", "--db", world.db_url, "--identity", "coordinator.identity", "--folder",
                    str(world.share), *extra, cwd=world.coord)


def _pull(world, site, ok=True):
    r = cli("site", "pull", *site.folder_args(world), "-o", "requests", "--json", cwd=site.online, ok=ok)
    return r if not ok else json.loads(r.stdout)


@pytest.fixture(scope="module")
def folder_ceremony(site_world):
    world = site_world
    coord = world.coord
    vault = load_vault_file(coord / "vault.json").vault
    if not (coord / "chain").exists():
        cli("regtest", "init", "chain", cwd=coord)
    cli("regtest", "fund", "chain", vault.address(0), "30000000", cwd=coord)
    cli("psbt", "create", "vault.json", "--chain", "chain", "--to", f"{PAYEE}:0.1btc", "--fee-rate", "2", "-o",
        "spend.psbt", cwd=coord)
    cli("session", "new", "vault.json", "spend.psbt", "--id", SID, "--memo", "by folder", "--db", world.db_url,
        "--coordinator-key", "broadcast.key", cwd=coord)
    out = {"sync1": _sync(world)}
    alice, bob, carol = (world.site(n) for n in ("alice", "bob", "carol"))
    out["sync1-files"] = {}
    for site in (alice, bob, carol):
        requests = world.share / "sites" / site.identity_id / "requests"
        out["sync1-files"][site.name] = ((requests / f"{SID}.msve").read_bytes()[:4],
                                         json.loads((requests / f"{SID}.json").read_text())["fingerprint"])
    # a relay flips one byte of bob's request: his pull refuses it and writes nothing for it
    bob_request = world.share / "sites" / bob.identity_id / "requests" / f"{SID}.msve"
    data = bytearray(bob_request.read_bytes())
    data[len(data) // 2] ^= 0x01
    bob_request.write_bytes(bytes(data))
    out["bob-tampered"] = _pull(world, bob, ok=False)
    out["bob-tampered-files"] = sorted(p.name for p in (bob.online / "requests").iterdir())
    out["sync2"] = _sync(world)  # the coordinator writes a fresh copy
    for site in (alice, bob):
        out[f"{site.name}-pull"] = _pull(world, site)
    out["carol-pull"] = cli_json("site", "pull", *carol.folder_args(world), "-o", "requests", "--qr", "--qr-format",
                                 "ur", cwd=carol.online)
    out["alice-pull-again"] = _pull(world, alice)  # the same envelope, pulled twice: unchanged
    # alice signs by file with site sign; carol with the plain psbt sign; bob refuses from his online machine
    request = alice.carry(alice.online / "requests" / f"{SID}.request", alice.laptop)
    cli("site", "sign", request.name, "--vault", "vault.json", "--key", "key.key", "-o", "answer.response", "--yes",
        cwd=alice.laptop, passphrase=KEY_PASSPHRASE)
    alice.carry(alice.laptop / "answer.response", alice.online)
    out["alice-push"] = cli_json("site", "push", f"requests/{SID}.request", "--response", "answer.response",
                                 *alice.folder_args(world), cwd=alice.online)
    frames = carol.carry(carol.online / "requests" / f"{SID}-qr", carol.laptop)  # BC-UR frames this time
    cli("psbt", "sign", "vault.json", "-", "--qr-in", frames.name, "--key", "key.key", "-o", "folder-signed.psbt",
        "--yes", cwd=carol.laptop, passphrase=KEY_PASSPHRASE)
    carol.carry(carol.laptop / "folder-signed.psbt", carol.online)
    out["carol-push"] = cli_json("site", "push", f"requests/{SID}.request", "--signed", "folder-signed.psbt",
                                 *carol.folder_args(world), cwd=carol.online)
    out["bob-push"] = cli_json("site", "push", f"requests/{SID}.request", "--refuse", "the memo is vague",
                               *bob.folder_args(world), cwd=bob.online)
    # someone with write access to the folder plants alice's envelope in bob's outbox
    planted = world.share / "sites" / bob.identity_id / "outbox" / f"{SID}-1.msve"
    shutil.copy(out["alice-push"]["file"], planted)
    out["sync3"] = _sync(world, "--chain", "chain")
    # and puts alice's processed envelope back into her outbox: a replay
    processed = world.share / "sites" / alice.identity_id / "processed" / f"{SID}-{out['alice-push']['sequence']}.msve"
    shutil.copy(processed, world.share / "sites" / alice.identity_id / "outbox" / processed.name)
    out["sync4"] = _sync(world)
    out["carol-pull-after"] = _pull(world, carol)
    cli("audit", "export", "--db", world.db_url, "--coordinator-key", "broadcast.key", "-o", "folder-audit.jsonl",
        cwd=coord)
    out["verify"] = cli_json("audit", "verify", "folder-audit.jsonl", cwd=coord)
    return out


def test_the_folder_sync_writes_a_sealed_request_for_every_site(site_world, folder_ceremony):
    written = {(r["site"], r["session"]) for r in folder_ceremony["sync1"]["requests"]}
    assert written == {(f"{n}-site", SID) for n in ("alice", "bob", "carol")}
    for site in site_world.sites.values():
        assert folder_ceremony["sync1-files"][site.name] == (b"MSVE", site.fingerprint)


def test_a_tampered_request_is_refused_and_nothing_is_written_for_it(folder_ceremony):
    r = folder_ceremony["bob-tampered"]
    assert r.returncode == 2 and "Traceback" not in r.stderr
    pulled = json.loads(r.stdout)  # one JSON object: what was pulled, what was refused, the error
    assert pulled["error"]["code"] == "site.error"
    assert pulled["requests"] == [] and [x["code"] for x in pulled["refused"]] == ["envelope.tampered"]
    assert not [name for name in folder_ceremony["bob-tampered-files"] if name.startswith(SID)]
    assert folder_ceremony["bob-pull"]["requests"][0]["session"] == SID  # the fresh copy opens


def test_each_site_pulls_its_request_once(site_world, folder_ceremony):
    for name in ("alice", "bob", "carol"):
        (row,) = folder_ceremony[f"{name}-pull"]["requests"]
        assert row["session"] == SID and row["fingerprint"] == site_world.site(name).fingerprint
        assert row["memo"] == "by folder" and row["vault"] == site_world.policy_id
    carol = folder_ceremony["carol-pull"]["requests"][0]
    assert carol["qr_format"] == "ur" and carol["qr_frames"] >= 2
    texts = (site_world.site("carol").online / "requests" / f"{SID}.qr.txt").read_text().split()
    assert len(texts) == carol["qr_frames"] and all(t.startswith("ur:crypto-psbt/") for t in texts)
    again = folder_ceremony["alice-pull-again"]
    assert again["requests"] == [] and again["unchanged"] == [SID]


def test_the_answers_go_in_through_the_services_checks_and_the_session_is_broadcast(site_world, folder_ceremony):
    by_site: "dict[str, list]" = {}
    for r in folder_ceremony["sync3"]["received"]:
        by_site.setdefault(r["site"], []).append(r)
    (alice,) = by_site["alice-site"]
    (carol,) = by_site["carol-site"]
    assert alice["outcome"] == "accepted" and carol["outcome"] == "accepted"
    # whichever came second (sites are taken in by identity id) finalized and broadcast it, in the same sync
    assert sorted([alice["status"], carol["status"]])[0] in ("broadcast", "confirmed")
    assert "open" in (alice["status"], carol["status"])
    bob = {r["file"]: r for r in by_site["bob-site"]}
    planted = bob[f"{SID}-1.msve"]
    assert planted["outcome"] == "refused" and planted["code"] == "envelope.wrong-sender"
    (refusal,) = [r for r in bob.values() if r is not planted]
    assert refusal["outcome"] == "recorded" and refusal["kind"] == "refusal"
    shown = cli_json("session", "show", SID, "--db", site_world.db_url, cwd=site_world.coord)
    assert shown["status"] in ("broadcast", "confirmed")
    states = {c["fingerprint"]: c for c in shown["cosigners"]}
    assert states[site_world.site("bob").fingerprint]["reason"] == "the memo is vague"
    with RegtestChain(datadir=site_world.coord / "chain") as chain:
        assert (shown["final_txid"], 10_000_000) in [(u.txid, u.amount) for u in chain.utxos(PAYEE_SCRIPT)]


def test_a_replayed_envelope_is_refused_and_filed_with_its_reason(site_world, folder_ceremony):
    (replay,) = folder_ceremony["sync4"]["received"]
    assert replay["site"] == "alice-site" and replay["code"] == "envelope.replayed"
    alice = site_world.site("alice")
    processed = site_world.share / "sites" / alice.identity_id / "processed"
    assert replay["processed"] != replay["file"]  # the first copy stays where it was filed
    assert json.loads((processed / f"{replay['processed']}.result.json").read_text())["code"] == "envelope.replayed"
    assert json.loads((processed / f"{replay['file']}.result.json").read_text())["outcome"] == "accepted"
    assert not list((site_world.share / "sites" / alice.identity_id / "outbox").iterdir())


def test_requests_of_a_finished_session_are_removed(site_world, folder_ceremony):
    removed = {(r["site"], r["session"]) for r in folder_ceremony["sync3"]["removed"]}
    assert removed == {(f"{n}-site", SID) for n in ("alice", "bob", "carol")}
    assert folder_ceremony["carol-pull-after"] == {"requests": [], "unchanged": [], "refused": []}


def test_the_audit_export_verifies_and_records_the_refused_envelopes(site_world, folder_ceremony):
    entries = [json.loads(line) for line in (site_world.coord / "folder-audit.jsonl").read_bytes().splitlines()[1:]]
    assert folder_ceremony["verify"]["ok"] and folder_ceremony["verify"]["entries"] == len(entries)
    refused = [e["data"]["code"] for e in entries if e["event"] == "envelope.refused"]
    assert "envelope.wrong-sender" in refused and "envelope.replayed" in refused
    events = [e["event"] for e in entries if e["session"] == SID]
    assert events.count("submission.accepted") == 2 and "cosigner.refused" in events and "session.broadcast" in events
