"""Intake on the regtest chain, one command per step: a WIF source (p2pkh, p2wpkh, an uncompressed
key), a BIP84 seed with a passphrase (several receive and change addresses, beyond the first gap)
and an old 2-of-2 P2SH multisig, each swept into a registered 2-of-3 vault; libbitcoinkernel
validates the blocks the sweeps are mined in; the custody records verify and `audit verify`
accepts the log. Nothing the online commands print or write holds a secret or a derived one."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from msigvault.address import address_from_script
from msigvault.keys.paths import HARDENED
from msigvault.lifecycle.custody import verify_record
from msigvault.lifecycle.discover import single_script
from msigvault.lifecycle.sources import ScriptKind
from msigvault.regtest import RegtestChain

from .conftest import BIP39_PASS, MNEMONIC, NET, fund, load, mnemonic_root, secret_key, wif

KC, KU, MA, MB = (secret_key(x) for x in ("compressed", "uncompressed", "multi-a", "multi-b"))
BIP84_FUNDED = {(0, 0): 110_000, (0, 4): 70_000, (0, 23): 50_000, (1, 1): 40_000, (1, 2): 30_000}
FEE_RATE = 5


def _pub(key: bytes, compressed: bool = True) -> bytes:
    from embit.util import secp256k1 as s

    return s.ec_pubkey_serialize(s.ec_pubkey_create(key), s.EC_COMPRESSED if compressed else s.EC_UNCOMPRESSED)


def _addr(kind: ScriptKind, pub: bytes) -> str:
    return address_from_script(single_script(kind, pub), NET)


def _bip84_child(branch: int, index: int):
    return mnemonic_root().derive((84 + HARDENED, 1 + HARDENED, HARDENED, branch, index))


def _intake(env, name: str, text: str, start_index: int, *, extra: "tuple[str, ...]" = (), bip39: bool = False):
    """Every step of one intake through the CLI; the paths written."""
    d = env.dir
    source = d / f"{name}.source"
    source.write_text(text)
    paths = {k: d / f"{name}.{k}" for k in ("watch", "found", "plan", "signed", "record", "html")}
    env_vars = {"MSIGVAULT_BIP39_PASSPHRASE": BIP39_PASS} if bip39 else {}
    env.run("intake", "prepare", source, "-n", "regtest", "-o", paths["watch"], *extra, online=False, env=env_vars)
    env.run("intake", "scan", paths["watch"], "--backend", env.backend, "-o", paths["found"])
    env.run("intake", "plan", paths["watch"], paths["found"], "--vault", env.vault_path, "--fee-rate", FEE_RATE,
            "--start-index", start_index, "-o", paths["plan"])
    env.run("intake", "sign", paths["plan"], source, "--vault", env.vault_path, "--policy-id", env.vault.policy_id,
            "-o", paths["signed"], "--yes", "--wipe-source", *extra, online=False, env=env_vars)
    env.run("intake", "broadcast", paths["signed"], "--backend", env.backend)
    env.run("intake", "record", "--case", f"CASE-2026-{name}", "--handler", "Officer Q. Example",
            "--description", f"{name} source found on a USB stick, exhibit 7", "--seized-at", "2026-11-30 14:00 UTC",
            "--watch", paths["watch"], "--found", paths["found"], "--plan", paths["plan"],
            "--signed", paths["signed"], "--vault", env.vault_path, "--backend", env.backend,
            "--identity", env.identity_path, "--coordinator-key", env.coordinator_key,
            "-o", paths["record"], "--html", paths["html"])
    assert not source.exists(), "--wipe-source removes the source"
    return paths


@pytest.fixture(scope="module")
def intakes(env):
    # WIF: one compressed key on all four script types, one uncompressed on p2pkh, and a dust coin
    wif_text = f"# exhibit 7\n{wif(KC)}\n{wif(KU, compressed=False)}\n"
    fund(env, _addr(ScriptKind.P2PKH, _pub(KC)), [120_000])
    fund(env, _addr(ScriptKind.P2WPKH, _pub(KC)), [80_000, 80_000])
    fund(env, _addr(ScriptKind.P2PKH, _pub(KU, False)), [60_000, 600])
    fund(env, _addr(ScriptKind.P2SH_P2WPKH, _pub(KC)), [25_000])
    fund(env, _addr(ScriptKind.P2TR, _pub(KC)), [35_000])
    # BIP84 seed with a passphrase
    for (branch, index), amount in BIP84_FUNDED.items():
        fund(env, _addr(ScriptKind.P2WPKH, _bip84_child(branch, index).public_key), [amount])
    # an old 2-of-2 P2SH multisig with both WIF keys
    from msigvault.script import multisig_script, p2sh_script_pubkey

    redeem = multisig_script(2, [_pub(MA), _pub(MB)])
    fund(env, address_from_script(p2sh_script_pubkey(redeem), NET), [90_000, 45_000])
    root = logging.getLogger()
    handler = _ListHandler()
    root.addHandler(handler)
    old_level, root.level = root.level, logging.DEBUG
    try:
        done = {
            "wif": _intake(env, "wif", wif_text, 0),
            "bip84": _intake(env, "bip84", MNEMONIC + "\n", 1, extra=("--bip39-passphrase",), bip39=True),
            "p2sh": _intake(env, "p2sh", f"sh(multi(2,{wif(MA)},{wif(MB)}))\n", 2),
        }
    finally:
        root.removeHandler(handler)
        root.level = old_level
    env.outputs += [(("log",), r.getMessage()) for r in handler.records]
    return done


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: "list[logging.LogRecord]" = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_every_coin_is_swept_into_the_vault_and_mined(env, intakes):
    expected = {"wif": 120_000 + 160_000 + 60_000 + 25_000 + 35_000, "bip84": sum(BIP84_FUNDED.values()), "p2sh": 135_000}
    with RegtestChain(datadir=env.chain_dir) as chain:
        for n, (name, paths) in enumerate(intakes.items()):
            record = json.loads(paths["record"].read_text())
            signed = load(paths["signed"])
            assert signed["verified_by_kernel"] is True
            (sweep,) = record["sweeps"]
            assert chain.get_tx(sweep["txid"]) is not None, "mined: the kernel accepted the block"
            assert sweep["confirmation_height"] is not None and sweep["confirmation_height"] <= chain.height
            assert chain.balance(env.vault.address(n)) == record["swept_total"]
            assert record["swept_total"] + record["fees_total"] == expected[name]
            assert record["vault"]["addresses"] == [env.vault.address(n)]


def test_the_dust_coin_is_left_out_and_listed(intakes):
    record = json.loads(intakes["wif"]["record"].read_text())
    (left,) = record["left_out"]
    assert left["amount"] == 600 and left["reason"].startswith("uneconomical")
    assert record["found_total"] == record["swept_total"] + record["fees_total"] + 600


def test_bip84_scan_finds_receive_and_change_beyond_the_first_addresses(intakes):
    found = load(intakes["bip84"]["found"])
    places = {(c["branch"], c["index"]) for c in found["coins"] if c["group"] == "bip84/0"}
    assert places == set(BIP84_FUNDED)


def test_records_verify_offline_and_the_audit_log_accepts_them(env, intakes):
    for name, paths in intakes.items():
        v = verify_record(paths["record"].read_bytes())
        assert v.case == f"CASE-2026-{name}"
        out = env.run("intake", "verify", paths["record"], "--json").output
        assert json.loads(out)["record_sha256"] == v.sha256
        page = paths["html"].read_text()
        assert v.sha256 in page and "<script" not in page and "http" not in page
    export = env.dir / "audit.export"
    env.run("audit", "export", "--vault", env.vault_path, "--coordinator-key", env.coordinator_key, "-o", export)
    result = json.loads(env.run("audit", "verify", export, "--json").output)
    assert result["ok"] is True and result["entries"] >= 5  # log.created, vault.registered, 3 records
    for paths in intakes.values():
        out = json.loads(env.run("intake", "verify", paths["record"], "--audit-export", export, "--json").output)
        assert out["audit_seq"] is not None
    json.loads(env.run("audit", "verify", "--vault", env.vault_path, "--json").output)


def test_written_files_are_private(intakes):
    for paths in intakes.values():
        for p in paths.values():
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p


def _derived_secrets() -> "list[str]":
    """Every secret of the sources and every private key derivable from them that the test touched."""
    from msigvault.keys.mnemonic import mnemonic_to_seed

    root = mnemonic_root()
    account = root.derive((84 + HARDENED, 1 + HARDENED, HARDENED))
    out = [MNEMONIC, BIP39_PASS, mnemonic_to_seed(MNEMONIC, BIP39_PASS).hex(), root.to_base58(), account.to_base58(),
           account.key[1:].hex()]
    out += [" ".join(MNEMONIC.split()[i:i + 3]) for i in range(10)]
    for key in (KC, KU, MA, MB):
        out += [key.hex(), wif(key), wif(key, compressed=False)]
    for place in BIP84_FUNDED:
        child = _bip84_child(*place)
        out += [child.key[1:].hex(), wif(child.key[1:])]
    return out


def test_no_online_output_log_or_file_holds_a_secret(env, intakes):
    secrets = _derived_secrets()
    texts = [text for _, text in env.outputs]
    for paths in intakes.values():
        texts += [p.read_text() for p in paths.values()]
    texts += [p.read_bytes().decode("latin-1") for p in env.dir.iterdir() if p.suffix in (".sqlite", ".export")]
    assert len(texts) > 20
    for text in texts:
        low = text.lower()
        for s in secrets:
            assert s.lower() not in low


def test_cli_errors_are_one_line_with_a_code_and_no_secret(env):
    from embit import base58

    from msigvault.testing.cli import run_cli

    key = secret_key("mainnet key")
    mainnet_wif = base58.encode_check(b"\x80" + key + b"\x01")
    bad = env.dir / "bad.source"
    bad.write_text(f"{mainnet_wif}\n")
    r = run_cli("intake", "prepare", bad, "-n", "regtest", "-o", env.dir / "bad.watch", "--json", cwd=env.dir)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert json.loads(r.stdout or r.stderr)["error"]["code"] == "intake.source"
    assert mainnet_wif not in r.stdout + r.stderr and key.hex() not in r.stdout + r.stderr
    assert not (env.dir / "bad.watch").exists()
