"""Issue 16's "Done when": three sites on one machine, each in its own directory with its own key and identity
files and each step its own process, complete a 2-of-3 ceremony through a real ``coordinator serve`` over TLS.
Alice's air-gapped step is by file (``site sign``), carol's by animated QR (rendered to PNG frames, decoded back
with zxing-cpp, signed with the plain ``psbt sign``, the signed PSBT shown back as QR), bob refuses. The session
finalizes, is broadcast to the regtest chain and confirmed; ``msigvault audit verify`` accepts the export.
"""

from __future__ import annotations

import json
import shutil

import pytest

from msigvault.identity import IdentityKey
from msigvault.regtest import RegtestChain
from msigvault.service.client import ServiceClient
from msigvault.vaultfile import load_vault_file

from .conftest import ID_PASSPHRASE, KEY_PASSPHRASE, PAYEE, PAYEE_SCRIPT, cli, cli_json


def _fund_and_propose(world, url, amount_btc: str, memo: str):
    """The coordinator's operator: a coin on the chain, an unsigned PSBT, a session proposed over the service."""
    coord = world.coord
    vault = load_vault_file(coord / "vault.json").vault
    if not (coord / "chain").exists():
        cli("regtest", "init", "chain", cwd=coord)
    cli("regtest", "fund", "chain", vault.address(0), "50000000", cwd=coord)
    name = f"{memo.replace(' ', '-')}.psbt"
    cli("psbt", "create", "vault.json", "--chain", "chain", "--to", f"{PAYEE}:{amount_btc}", "--fee-rate", "2",
        "-o", name, cwd=coord)
    ops = IdentityKey.load(coord / "ops.identity", ID_PASSPHRASE)
    with ServiceClient(url, ops, ca=world.pki.ca_cert) as client:
        return client.propose(world.policy_id, (coord / name).read_bytes(), memo=memo, expires_in=3600)


@pytest.fixture(scope="module")
def ceremony(site_world, server):
    world, url = site_world, server.url
    proposed = _fund_and_propose(world, url, "0.2btc", "Q3 rent")
    sid = proposed["id"]
    alice, bob, carol = (world.site(n) for n in ("alice", "bob", "carol"))
    steps = {}
    # every site's online machine pulls; carol's also renders the request as an animated BBQr
    steps["alice-pull"] = cli_json("site", "pull", *alice.online_args(world, url), "-o", "requests", cwd=alice.online)
    steps["bob-pull"] = cli_json("site", "pull", *bob.online_args(world, url), "-o", "requests", cwd=bob.online)
    steps["carol-pull"] = cli_json("site", "pull", *carol.online_args(world, url), "-o", "requests", "--qr",
                                   "--qr-format", "bbqr", cwd=carol.online)
    # alice: by file. The request goes to the laptop, the response comes back.
    request = alice.carry(alice.online / "requests" / f"{sid}.request", alice.laptop)
    steps["alice-sign"] = cli_json("site", "sign", request.name, "--vault", "vault.json", "--key", "key.key", "-o",
                                   f"{sid}.response", "--yes", cwd=alice.laptop, passphrase=KEY_PASSPHRASE)
    alice.carry(alice.laptop / f"{sid}.response", alice.online)
    steps["alice-push"] = cli_json("site", "push", f"requests/{sid}.request", "--response", f"{sid}.response",
                                   *alice.online_args(world, url), cwd=alice.online)
    # bob: refuses on his laptop, after looking at the request
    request = bob.carry(bob.online / "requests" / f"{sid}.request", bob.laptop)
    cli("site", "refuse", request.name, "--reason", "not before the board meets", "-o", f"{sid}.response",
        cwd=bob.laptop)
    bob.carry(bob.laptop / f"{sid}.response", bob.online)
    steps["bob-push"] = cli_json("site", "push", f"requests/{sid}.request", "--response", f"{sid}.response",
                                 *bob.online_args(world, url), cwd=bob.online)
    # carol: by QR both ways. The laptop's camera reads the frames; the laptop shows the signed PSBT as QR.
    frames = carol.carry(carol.online / "requests" / f"{sid}-qr", carol.laptop)
    steps["carol-sign"] = cli_json("psbt", "sign", "vault.json", "-", "--qr-in", frames.name, "--key", "key.key",
                                   "-o", "signed.psbt", "--qr", "signed-qr", "--qr-format", "bbqr", "--yes",
                                   cwd=carol.laptop, passphrase=KEY_PASSPHRASE)
    shown = carol.carry(carol.laptop / "signed-qr", carol.online)
    steps["carol-push"] = cli_json("site", "push", f"requests/{sid}.request", "--qr-in", shown.name,
                                   *carol.online_args(world, url), cwd=carol.online)
    # the coordinator broadcasts the finalized session to the chain (its operator, on its machine)
    steps["broadcast"] = cli_json("session", "broadcast", sid, "--db", world.db_url, "--coordinator-key",
                                  "broadcast.key", "--chain", "chain", cwd=world.coord)
    auditor = IdentityKey.load(world.coord / "auditor.identity", ID_PASSPHRASE)
    with ServiceClient(url, auditor, ca=world.pki.ca_cert) as client:
        (world.coord / "audit.jsonl").write_bytes(client.audit_export())
    steps["verify"] = cli_json("audit", "verify", "audit.jsonl", cwd=world.coord)
    return {"sid": sid, "proposed": proposed, **steps}


def test_each_site_pulled_its_own_request(site_world, ceremony):
    sid = ceremony["sid"]
    for name in ("alice", "bob", "carol"):
        site = site_world.site(name)
        (row,) = ceremony[f"{name}-pull"]["requests"]
        assert row["session"] == sid and row["fingerprint"] == site.fingerprint and row["vault"] == site_world.policy_id
        assert row["memo"] == "Q3 rent" and row["coordinator_name"] == "coordinator"
        request = json.loads((site.online / "requests" / f"{sid}.request").read_text())
        psbt = (site.online / "requests" / f"{sid}.psbt").read_bytes()
        assert request["psbt_sha256"] == ceremony["proposed"]["psbt_sha256"] == row["psbt_sha256"]
        assert psbt.startswith(b"psbt\xff")
    carol = ceremony["carol-pull"]["requests"][0]
    assert carol["qr_format"] == "bbqr" and carol["qr_frames"] >= 2  # a 2-input PSBT is an animation
    lines = (site_world.site("carol").online / "requests" / f"{sid}.qr.txt").read_text().split()
    assert len(lines) == carol["qr_frames"] and all(line.startswith("B$ZP") for line in lines)


def test_two_signatures_and_a_refusal_finalize_the_session(site_world, ceremony):
    alice, bob, carol = (site_world.site(n) for n in ("alice", "bob", "carol"))
    assert ceremony["alice-sign"]["fingerprint"] == alice.fingerprint
    first = ceremony["alice-push"]
    assert first["kind"] == "partial-signature" and first["outcome"] == "accepted"
    assert first["signers"] == [alice.fingerprint] and first["session"]["status"] == "open"
    refusal = ceremony["bob-push"]
    assert refusal["kind"] == "refusal" and refusal["outcome"] == "recorded"
    states = {c["fingerprint"]: c for c in refusal["session"]["cosigners"]}
    assert states[bob.fingerprint]["state"] == "refused"
    assert states[bob.fingerprint]["reason"] == "not before the board meets"
    last = ceremony["carol-push"]
    assert last["outcome"] == "accepted" and last["signers"] == [carol.fingerprint]
    assert last["session"]["status"] == "finalized" and last["session"]["signatures_needed"] == 0
    assert sorted(last["session"]["signed"]) == sorted([alice.fingerprint, carol.fingerprint])


def test_the_transaction_is_on_the_chain(site_world, ceremony):
    done = ceremony["broadcast"]
    assert done["status"] in ("broadcast", "confirmed") and done["final_txid"]
    with RegtestChain(datadir=site_world.coord / "chain") as chain:
        assert [(u.txid, u.amount) for u in chain.utxos(PAYEE_SCRIPT)] == [(done["final_txid"], 20_000_000)]


def test_the_audit_export_verifies_and_tells_the_story(site_world, ceremony):
    entries = [json.loads(line) for line in (site_world.coord / "audit.jsonl").read_bytes().splitlines()[1:]]
    assert ceremony["verify"]["ok"] is True and ceremony["verify"]["entries"] == len(entries)
    events = [e["event"] for e in entries if e["session"] == ceremony["sid"]]
    assert events.count("submission.accepted") == 2 and "cosigner.refused" in events
    assert events.index("session.finalized") < events.index("session.broadcast")
    # a PSBT never reaches the server's log
    log = (site_world.coord / "server.log").read_text(errors="replace")
    request = (site_world.site("alice").online / "requests" / f"{ceremony['sid']}.request").read_text()
    assert "GET /v1/requests" in log and json.loads(request)["psbt"][:40] not in log


def test_pulling_again_after_the_ceremony_finds_nothing(site_world, server, ceremony):
    alice = site_world.site("alice")
    again = cli_json("site", "pull", *alice.online_args(site_world, server.url), "-o", "requests", cwd=alice.online)
    assert again == {"requests": [], "unchanged": [], "refused": []}


def test_pushing_again_is_safe(site_world, server, ceremony):
    """After a lost connection the site pushes the same answer again: a fresh envelope, the same PSBT, answered
    as the first time and counted once."""
    sid, alice = ceremony["sid"], site_world.site("alice")
    again = cli_json("site", "push", f"requests/{sid}.request", "--response", f"{sid}.response",
                     *alice.online_args(site_world, server.url), cwd=alice.online)
    assert again["outcome"] == "accepted" and again["sequence"] > ceremony["alice-push"]["sequence"]
    assert len(again["session"]["signed"]) == 2 and again["psbt_sha256"] == ceremony["alice-push"]["psbt_sha256"]


def test_a_laptop_refuses_to_sign_another_cosigners_request(site_world, ceremony):
    """Bob's request carried to alice's laptop: site sign refuses it before showing or signing anything."""
    sid = ceremony["sid"]
    alice, bob = site_world.site("alice"), site_world.site("bob")
    shutil.copy(bob.online / "requests" / f"{sid}.request", alice.laptop / "bob.request")
    r = cli("site", "sign", "bob.request", "--vault", "vault.json", "--key", "key.key", "-o", "bob.response",
            "--yes", "--json", cwd=alice.laptop, passphrase=KEY_PASSPHRASE, ok=False)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "site.request"
    assert f"asks cosigner {bob.fingerprint}" in json.loads(r.stdout)["error"]["message"]
    assert not (alice.laptop / "bob.response").exists()


def test_a_hostile_memo_cannot_draw_over_the_signers_summary(site_world, ceremony):
    """The memo and names are the coordinator's text (not hashed, not checked): escape sequences and
    bidirectional overrides in them are shown escaped, never sent to the keyholder's terminal."""
    alice = site_world.site("alice")
    request = json.loads((alice.online / "requests" / f"{ceremony['sid']}.request").read_text())
    request.update(memo="\x1b[2J\x1b[Hall clear, fee 0 sat\u202e", vault_name="treasury\r\n  output 9: PAY")
    (alice.laptop / "hostile.request").write_text(json.dumps(request))
    r = cli("site", "sign", "hostile.request", "--vault", "vault.json", "--key", "key.key", "-o", "x.response",
            cwd=alice.laptop, passphrase=KEY_PASSPHRASE, stdin="n\n", ok=False)
    shown = r.stdout + r.stderr
    assert r.returncode == 2 and "not signed" in r.stderr and "Signing as" in shown  # the summary was shown
    assert "\x1b" not in shown and "\u202e" not in shown and "\r" not in shown
    assert "\\x1b[2J\\x1b[Hall clear" in shown and "\\u202e" in shown and "treasury\\r\\n" in shown
    assert not (alice.laptop / "x.response").exists()


def test_a_response_to_another_request_is_refused_before_anything_is_sent(site_world, server, ceremony, tmp_path):
    """Carol pushes alice's response with her own request: the site refuses it locally (site.response)."""
    sid = ceremony["sid"]
    alice, carol = site_world.site("alice"), site_world.site("carol")
    shutil.copy(alice.online / f"{sid}.response", carol.online / "alice.response")
    r = cli("site", "push", f"requests/{sid}.request", "--response", "alice.response",
            *carol.online_args(site_world, server.url), "--json", cwd=carol.online, ok=False)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "site.response"
