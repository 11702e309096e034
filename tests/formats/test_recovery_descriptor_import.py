"""`vault import --format descriptor` reads vaults with recovery paths (issue 18); the wallet
formats, which hold only a plain multisig, keep refusing them."""

import json

import pytest
from click.testing import CliRunner

from msigvault import Vault, formats
from msigvault.errors import MsigvaultError
from msigvault.formats._warnings import WarningCode
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.testing.keyholders import TestKeyholder

NAMES = ("imp-a", "imp-b", "imp-c", "imp-l", "imp-e", "imp-x")


def recovery_vault(script, lock=Timelock.older(144)):
    """Two recovery paths: 1-of-2 after ``lock``, the estate's key after a height."""
    a, b, c, l, e, x = (TestKeyholder.from_label(n).cosigner(script) for n in NAMES)
    return Vault.multisig(2, [a, b, c], script=script, network="regtest",
                          recovery=[Recovery(1, [l, e], lock), Recovery(1, [x], Timelock.after(900_000))])


@pytest.mark.parametrize("script", ["wsh", "tr"])
@pytest.mark.parametrize("form", ["multipath", "pair", "listdescriptors", "importdescriptors"])
def test_every_descriptor_form_of_a_recovery_vault_imports(script, form):
    v = recovery_vault(script)
    got = formats.import_vault(formats.export_vault(v, "descriptor", form=form), network="regtest")
    assert got.format == "descriptor" and got.vault == v and got.vault.recovery == v.recovery
    assert got.vault.policy_id == v.policy_id and not got.warnings


def test_one_branch_or_no_checksum_is_a_warning_and_a_mismatch_is_refused():
    v = recovery_vault("wsh")
    receive, change = v.descriptors()
    got = formats.import_vault(receive.split("#")[0], network="regtest")
    assert got.vault == v
    assert {w.code for w in got.warnings} == {WarningCode.NO_CHECKSUM, WarningCode.IMPLIED_BRANCH}
    other = recovery_vault("wsh", Timelock.older(145)).descriptors()[1]
    with pytest.raises(MsigvaultError, match="different vault"):
        formats.import_vault(f"{receive}\n{other}\n", network="regtest")
    plain = Vault.multisig(2, [TestKeyholder.from_label(n).cosigner("wsh") for n in NAMES[:3]], script="wsh",
                           network="regtest", sorted=False)
    for pair in ((receive, plain.descriptors()[1]), (plain.descriptors()[0], change)):
        with pytest.raises(MsigvaultError, match="different vault"):
            formats.import_vault("\n".join(pair), network="regtest")
    entries = json.loads(formats.export_vault(v, "descriptor", form="importdescriptors"))
    entries[0]["internal"] = True  # the receive descriptor marked as change
    with pytest.raises(MsigvaultError, match="marked internal"):
        formats.import_vault(json.dumps(entries), network="regtest")


@pytest.mark.parametrize("script", ["wsh", "tr"])
@pytest.mark.parametrize("fmt", ["sparrow", "coldcard"])
def test_wallet_formats_keep_refusing_recovery_descriptors(script, fmt):
    with pytest.raises(MsigvaultError):
        formats.import_vault(recovery_vault(script).descriptor(), network="regtest", fmt=fmt)


def test_a_descriptor_not_of_the_recovery_shape_is_refused_with_the_reason():
    v = recovery_vault("wsh")
    k = [str(c) + "/<0;1>/*" for c in v.cosigners]
    from msigvault.policy.checksum import descriptor_checksum

    body = f"wsh(or_d(multi(2,{k[0]},{k[1]},{k[2]}),and_v(v:pk({k[3]}),older(100))))"
    with pytest.raises(MsigvaultError, match="not a vault shape"):
        formats.import_vault(f"{body}#{descriptor_checksum(body)}", network="regtest")


def test_vault_import_command_reads_a_recovery_descriptor(tmp_path):
    from msigvault.cli import cli

    v = recovery_vault("tr")
    (tmp_path / "vault.desc").write_text(v.descriptor() + "\n")
    result = CliRunner().invoke(cli, ["vault", "import", str(tmp_path / "vault.desc"), "-n", "regtest", "-o",
                                      str(tmp_path / "vault.json"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["format"] == "descriptor" and out["policy_id"] == v.policy_id and len(out["recovery"]) == 2
