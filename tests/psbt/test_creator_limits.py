"""The coordinator applies the signer's default fee limits before anyone is asked to sign."""

import json
import os
import subprocess
import sys

import pytest

from msigvault import Vault
from msigvault.errors import PolicyError
from msigvault.network import Network
from msigvault.psbt.creator import create_sweep
from msigvault.psbt.signer import SignerPolicy, check
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
HOLDERS = [TestKeyholder.from_label(f"creator-limits-{i}") for i in range(3)]
VAULT = Vault.multisig(2, [h.cosigner("wsh") for h in HOLDERS], script="wsh", network=NET)
UTXO = synthetic_utxo(VAULT, 5_000_000, seed="limits")


def test_a_fee_the_signer_would_refuse_is_refused_at_creation():
    with pytest.raises(PolicyError, match="signers would refuse"):
        VAULT.create_psbt([UTXO], [(EXTERNAL, 1_000_000)], fee_rate=5_000, change_index=0)
    with pytest.raises(PolicyError, match="more than 10%"):
        VAULT.create_psbt([UTXO], [(EXTERNAL, 10_000)], fee_rate=20, change_index=0)
    with pytest.raises(PolicyError, match="signers would refuse"):
        create_sweep(VAULT, [UTXO], EXTERNAL, fee_rate=5_000)


def test_limits_can_be_lifted_explicitly_and_then_the_signer_still_decides():
    psbt = VAULT.create_psbt([UTXO], [(EXTERNAL, 1_000_000)], fee_rate=1_500, change_index=0, fee_limits=None)
    from msigvault.errors import SignerRefusal

    with pytest.raises(SignerRefusal, match="fee rate"):
        check(psbt, VAULT, fingerprint=HOLDERS[0].fingerprint)
    lax = SignerPolicy(max_fee_rate=2_000, max_fee_sats=10**8, max_fee_fraction=1.0)
    ok = VAULT.create_psbt([UTXO], [(EXTERNAL, 1_000_000)], fee_rate=1_500, change_index=0, fee_limits=lax)
    check(ok, VAULT, fingerprint=HOLDERS[0].fingerprint, policy=lax)


def test_cli_create_refuses_a_huge_fee_before_writing(tmp_path):
    (tmp_path / "utxos.json").write_text(json.dumps([UTXO.to_dict()]))
    from msigvault.vaultfile import VaultFile

    VaultFile(VAULT, "limits").save(tmp_path / "vault.json")
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    args = [sys.executable, "-m", "msigvault", "psbt", "create", "vault.json", "--utxos", "utxos.json",
            "--to", "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz:1000000", "-o", "spend.psbt"]
    proc = subprocess.run(args + ["--fee-rate", "5000"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "signers would refuse" in proc.stderr, proc.stderr
    assert not (tmp_path / "spend.psbt").exists()
    assert json.loads((tmp_path / "vault.json").read_text())["next_change_index"] == 0
    proc = subprocess.run(args + ["--fee-rate", "1500", "--max-fee-rate", "2000", "--max-fee-sats", "100000000",
                                  "--max-fee-fraction", "1"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "spend.psbt").exists()
