"""The demo ceremony (what `make demo` runs) completes and confirms the payment on chain."""

from msigvault.demo import run_demo


def test_demo_runs_the_whole_ceremony(tmp_path):
    lines = []
    result = run_demo(lines.append, workdir=tmp_path)
    assert result["paid"] == 65_000_000
    assert 0 < result["vault_balance"] < 100_000_000 - 65_000_000
    text = "\n".join(lines)
    for step in ("key new", "vault verify", "psbt sign", "psbt combine", "psbt finalize", "broadcast"):
        assert f"$ msigvault {step}" in text
    assert "site-alice/alice-signed.psbt -> coordinator/alice-signed.psbt" in text
    # no passphrase or key material is printed
    for site in ("alice", "bob", "carol"):
        key = (tmp_path / f"site-{site}" / f"{site}.key").read_text()
        assert key not in text
