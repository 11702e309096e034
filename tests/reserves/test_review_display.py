"""What a keyholder approves is shown so that it can be read only one way: a message, an address or
a vault name from a hostile coordinator cannot redraw the screen (ESC/CSI, C1 controls, CR) or
reorder what is read (bidi overrides), in the proof, proof-of-reserves, successor and key-health
displays. Each test fails on a display that passes such characters through. Last, a proof PSBT
with no inputs at all is refused by every proof role (it raised IndexError)."""

import json

import pytest

from msigvault import Vault
from msigvault.network import Network
from msigvault.psbt.display import escaped, escaped_lines
from msigvault.psbt.signer import prepare, prepare_proof
from msigvault.psbt.successor import SuccessorOutput
from msigvault.reserves import bip322, health
from msigvault.reserves import por as R
from msigvault.testing.cli import run_cli
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
HOLDERS = [TestKeyholder.from_label(f"display-{i}") for i in range(3)]
# RLO reorders the rest of the line; CSI 2J (C1) clears the screen; ESC[1A moves up; U+2028 breaks
# the line; CR returns to its start; ZWJ and an isolate are invisible
HOSTILE = "pay\u202e0001 BTC\u202c ok\x9b2J\x1b[1A\u2028line\rX\u200d\u2066"
RAW = ["\u202e", "\u202c", "\x9b", "\x1b", "\u2028", "\r", "\u200d", "\u2066"]


def _clean(text: str) -> None:
    assert not [c for c in RAW if c in text], repr(text)
    for escape in ("\\u202e", "\\x9b", "\\u001b", "\\u2028", "\\r", "\\u200d", "\\u2066"):
        assert escape in text, (escape, text)


def test_the_escaping_keeps_printable_text_and_escapes_the_rest():
    assert escaped("Auditor Ltd, 2026-12-01 é 日本 \"q\"") == 'Auditor Ltd, 2026-12-01 é 日本 \\"q\\"'
    _clean(escaped(HOSTILE))
    assert escaped_lines("a\nb\u202e") == ["a", "b\\u202e"]


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_a_bip322_proof_message_is_shown_escaped(script):
    vault = Vault.multisig(2, [h.cosigner(script) for h in HOLDERS], script=script, network=NET)
    psbt = bip322.create_proof(vault, HOSTILE)
    summary = prepare_proof(psbt, vault, fingerprint=HOLDERS[0].fingerprint, message=HOSTILE).summary
    assert summary.proof is not None and summary.proof.message == HOSTILE  # what is signed is unchanged
    _clean(summary.text())


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_a_proof_of_reserves_message_is_shown_escaped(script):
    vault = Vault.multisig(2, [h.cosigner(script) for h in HOLDERS], script=script, network=NET)
    psbt = R.create_proof(vault, [synthetic_utxo(vault, 40_000, index=1, seed="d")], HOSTILE + "\nsecond")
    summary = prepare(psbt, vault, fingerprint=HOLDERS[1].fingerprint).summary
    text = summary.text()
    _clean(text)
    assert "PROOF OF RESERVES" in text and "    second" in text
    with pytest.raises(Exception) as e:  # the refusal naming the PSBT's message escapes it too
        prepare(psbt, vault, fingerprint=HOLDERS[1].fingerprint, proof_message="what I was told")
    assert "\u202e" not in str(e.value) and "\\u202e" in str(e.value)


def test_a_successor_name_is_shown_escaped():
    label = SuccessorOutput(0, "next\u202elaunaM\x1b[2K", "ab" * 32, 0, 3).label()
    assert "\u202e" not in label and "\x1b" not in label and "next\\u202elaunaM\\u001b[2K" in label


def test_health_respond_checks_the_challenge_before_showing_it(tmp_path):
    """An altered challenge (its address carries an escape sequence) is refused before anything
    of it reaches the screen, and nothing is signed."""
    def ok(*args, passphrase=None):
        proc = run_cli(*args, cwd=tmp_path, passphrase=passphrase)
        assert proc.returncode == 0, proc.stderr
        return proc

    for name in ("alice", "bob"):
        ok("key", "new", f"{name}.key", "--skip-backup-check", passphrase=name)
        ok("key", "cosigner", f"{name}.key", "-n", "regtest", "-o", f"{name}.cosigner", passphrase=name)
    ok("vault", "create", "-m", "2", "alice.cosigner", "bob.cosigner", "-n", "regtest", "-o", "vault.json")
    ok("vault", "verify", "vault.json", "--key", "alice.key", "--yes", passphrase="alice")
    ok("health", "challenge", "vault.json", "--date", "2026-12-01", "-o", "challenges.json")
    doc = json.loads((tmp_path / "challenges.json").read_text())
    fingerprint = (tmp_path / "alice.cosigner").read_text().strip()[1:9]
    for c in doc["challenges"]:
        if c["fingerprint"] == fingerprint:
            c["address"] = c["address"] + "\u202e\r\x9b2J"  # (click itself strips only ESC [ sequences)
    (tmp_path / "altered.json").write_text(json.dumps(doc))
    proc = run_cli("health", "respond", "vault.json", "altered.json", "--key", "alice.key", "--yes",
                   "-o", "alice.json", cwd=tmp_path, passphrase="alice")
    assert proc.returncode == 2 and "altered" in proc.stderr
    shown = proc.stdout + proc.stderr
    assert "Key-health check" not in shown and not (tmp_path / "alice.json").exists()
    assert not [c for c in ("\u202e", "\r", "\x9b") if c in shown]
    good = ok("health", "respond", "vault.json", "challenges.json", "--key", "alice.key", "--yes",
              "-o", "alice.json", passphrase="alice")
    assert "Key-health check" in good.stdout + good.stderr
    answer = health.Response.from_dict(json.loads((tmp_path / "alice.json").read_text()))
    assert answer.fingerprint == fingerprint


def test_a_proof_of_reserves_without_inputs_is_refused_by_every_role():
    """A v2 PSBT may have no inputs at all: each proof role refuses it with its own error."""
    from msigvault.errors import CombineError, FinalizeError
    from msigvault.psbt import por as P
    from msigvault.psbt.psbt import Psbt
    from msigvault.script import compact_size

    def kv(k, v):
        return compact_size(len(k)) + k + compact_size(len(v)) + v
    glob = kv(b"\xfb", (2).to_bytes(4, "little")) + kv(b"\x02", (2).to_bytes(4, "little")) + kv(b"\x04", b"\x00") \
        + kv(b"\x05", b"\x01") + b"\x00"
    empty = Psbt.parse(b"psbt\xff" + glob + kv(b"\x03", (0).to_bytes(8, "little")) + kv(b"\x04", b"\x6a") + b"\x00")
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in HOLDERS], script="wsh", network=NET)
    with pytest.raises(P.ReserveProofRefused, match="no inputs"):
        P.check_shape(empty)
    with pytest.raises(CombineError):
        R.combine([empty], vault)
    with pytest.raises(FinalizeError):
        R.finalize(empty, vault)
    with pytest.raises(R.ReservesError):
        R.encode(empty, vault)
