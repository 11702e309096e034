"""The CLI against a served node: msigvault regtest serve in its own process, then vault
balance|utxos|history|scan, psbt create --backend and broadcast --backend over loopback."""

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from msigvault.psbt.psbt import Psbt
from msigvault.regtest import RegtestChain
from msigvault.vaultfile import VaultFile

PAYEE = "bcrt1qzyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3lgth6c"


def run(*args, cwd, timeout=120):
    return subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def ok(*args, cwd):
    proc = run(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def fails(*args, cwd, match):
    proc = run(*args, cwd=cwd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and match in line, line
    return line


@pytest.fixture(scope="module")
def served(tmp_path_factory, hx):
    """A vault file, a chain funding it at receive 2 and 9, and `regtest serve` on free ports."""
    d = tmp_path_factory.mktemp("served")
    vault, holders = hx.make_vault()
    VaultFile(vault, "backends").save(d / "vault.json")
    with RegtestChain(datadir=d / "chain") as chain:
        chain.mine(101)
        chain.fund(vault.address(2), [300_000])
        chain.fund(vault.address(9), [200_000])
    proc = subprocess.Popen([sys.executable, "-m", "msigvault", "regtest", "serve", "chain",
                             "--rpc-port", "0", "--esplora-port", "0", "--fee-estimate", "3", "--json"],
                            cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not "".join(lines).rstrip().endswith("}"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        info = json.loads("".join(lines))
        yield d, vault, holders, info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr.read()
    assert not (d / "chain" / ".cookie").exists()  # removed on stop, as Core does


def test_serve_reports_its_ports_and_writes_a_private_cookie(served):
    d, _vault, _h, info = served
    assert info["rpc_port"] > 0 and info["esplora_port"] > 0
    cookie = d / "chain" / ".cookie"
    assert cookie.read_text().startswith("__cookie__:") and (cookie.stat().st_mode & 0o777) == 0o600
    assert info["core_backend"] == f"core+http://127.0.0.1:{info['rpc_port']}?cookie={cookie.relative_to(d)}"


def test_balance_utxos_history_scan(served):
    d, vault, _h, info = served
    for url in (info["core_backend"], info["esplora_backend"]):
        balance = json.loads(ok("vault", "balance", "vault.json", "--backend", url, "--json", cwd=d))
        assert (balance["confirmed"], balance["unconfirmed"], balance["coins"]) == (500_000, 0, 2)
    utxos = json.loads(ok("vault", "utxos", "vault.json", "--backend", info["esplora_backend"],
                          "-o", "utxos.json", "--json", cwd=d))
    assert sorted(u["index"] for u in utxos) == [2, 9]
    written = json.loads((d / "utxos.json").read_text())
    assert all(u["prev_tx"] for u in written) and len(written) == 2
    history = json.loads(ok("vault", "history", "vault.json", "--backend", info["esplora_backend"], "--json", cwd=d))
    assert len(history) == 2 and all(t["confirmations"] >= 1 for t in history)
    fails("vault", "history", "vault.json", "--backend", info["core_backend"], cwd=d,
          match="has no history")
    scan = json.loads(ok("vault", "scan", "vault.json", "--backend", info["core_backend"],
                         "--cross-check", info["esplora_backend"], "--json", cwd=d))
    assert scan["next_receive_index"] == 10 and scan["next_receive_address"] == vault.address(10)
    assert json.loads((d / "vault.json").read_text())["next_receive_index"] == 10  # recorded
    assert scan["round_trips"] >= 1


def test_psbt_create_and_broadcast_through_the_backend(served):
    d, vault, holders, info = served
    url = info["core_backend"]
    ok("psbt", "create", "vault.json", "--backend", url, "--to", f"{PAYEE}:150000", "--fee-rate", "2",
       "-o", "spend.psbt", cwd=d)
    psbt = Psbt.load((d / "spend.psbt").read_bytes())
    parts = [vault.sign(psbt, h.root)[0] for h in holders[1:]]
    (d / "final.psbt").write_bytes(vault.finalize(vault.combine(parts)).serialize())
    out = json.loads(ok("broadcast", "vault.json", "final.psbt", "--backend", url, "--json", cwd=d))
    assert out["verified_by_kernel"] is True and out["verified_against"] == "caller"
    again = json.loads(ok("broadcast", "vault.json", "final.psbt", "--backend", info["esplora_backend"],
                          "--json", cwd=d))
    assert again["txid"] == out["txid"]  # a transaction already in the mempool: Core answers its txid
    pending = json.loads(ok("vault", "balance", "vault.json", "--backend", info["esplora_backend"], "--json", cwd=d))
    assert pending["unconfirmed"] > 0 and pending["confirmed"] < 500_000
    user, password = (d / "chain" / ".cookie").read_text().split(":", 1)
    r = httpx.post(f"http://127.0.0.1:{info['rpc_port']}", auth=(user, password),
                   json={"method": "generatetoaddress", "params": [1, PAYEE], "id": 1})
    assert r.status_code == 200 and len(r.json()["result"]) == 1
    mined = json.loads(ok("vault", "balance", "vault.json", "--backend", url, "--json", cwd=d))
    assert mined["unconfirmed"] == 0 and 0 < 500_000 - 150_000 - mined["confirmed"] < 2_000  # the fee
    fails("broadcast", "vault.json", "final.psbt", "--backend", info["esplora_backend"], cwd=d,
          match="Transaction outputs already in utxo set")
    vf = json.loads((d / "vault.json").read_text())
    assert vf["next_change_index"] >= 1


def test_failures_write_nothing(served, tmp_path):
    d, _vault, _h, info = served
    before = (d / "vault.json").read_bytes()
    dead = "esplora+http://127.0.0.1:9?timeout=0.5&retries=0"
    fails("vault", "scan", "vault.json", "--backend", dead, cwd=d, match="cannot reach the server")
    fails("vault", "utxos", "vault.json", "--backend", dead, "-o", "never.json", cwd=d, match="cannot reach")
    assert (d / "vault.json").read_bytes() == before and not (d / "never.json").exists()
    fails("vault", "balance", "vault.json", "--backend", "ftp://x", cwd=d, match="is not a backend URL")
    fails("vault", "balance", "vault.json", "--backend", "electrum+tcp://127.0.0.1:9?timeout=0.5&retries=0",
          cwd=d, match="cannot reach the server")
    fails("psbt", "create", "vault.json", "--backend", dead, "--chain", "chain", "--to", f"{PAYEE}:1000",
          "--fee-rate", "1", "-o", "x.psbt", cwd=d, match="exactly one of")


def test_keyholder_commands_and_help_never_load_the_online_half(tmp_path):
    code = ("import sys, msigvault.cli as c\n"
            "from msigvault import keys, policy, psbt, transport, formats\n"
            "import msigvault.psbt.signer, msigvault.transport.qr\n"
            "bad = [m for m in sys.modules if m.startswith(('msigvault.backends', 'httpx', 'bitcoinlib'))]\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_vault_files_receive_bookkeeping_is_checked(tmp_path, hx):
    from msigvault.vaultfile import VaultFileError, load_vault_file

    vault, _h = hx.make_vault()
    path = VaultFile(vault, "v").save(tmp_path / "v.json")
    assert "next_receive_index" not in json.loads(path.read_text())  # files stay as they were
    assert load_vault_file(path).next_receive_index == 0
    VaultFile(vault, "v").with_next_receive_index(7).save(path, overwrite=True)
    assert load_vault_file(path).next_receive_index == 7
    for bad in (-1, "7", True):
        obj = json.loads(path.read_text())
        obj["next_receive_index"] = bad
        path.write_text(json.dumps(obj))
        with pytest.raises(VaultFileError, match="next_receive_index must be a whole number"):
            load_vault_file(path)
