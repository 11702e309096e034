"""A shared folder an attacker can write into: links planted in it never lead the coordinator's folder-sync
(or a site) to write, move or delete anything outside the folder, and a flood of junk envelopes writes a
bounded number of audit entries (adversarial review of issue 16)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from msigvault.site.errors import FolderError
from msigvault.site.folder import SiteFolder
from msigvault.site.online import Sealed, push_to_folder
from msigvault.site.sync import sync_folder

_spec = importlib.util.spec_from_file_location("_site_links_service_conftest",
                                               Path(__file__).resolve().parent.parent / "service" / "conftest.py")
_svc = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _svc
_spec.loader.exec_module(_svc)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("links")
    return _svc.make_world(root, f"sqlite:///{root / 'coordinator.sqlite'}")


def _victim(path: Path) -> "dict[str, bytes]":
    """A directory of the coordinator's machine with files whose names the folder layout would match."""
    path.mkdir()
    files = {"vault.json": b"the registered vault", "3fa1c0de.msve": b"MSVE", "s1-5.msve": b"MSVE",
             "s1-5.msve.result.json": b"{}"}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def _unchanged(path: Path, files: "dict[str, bytes]") -> bool:
    return {p.name: p.read_bytes() for p in path.iterdir()} == files


def test_a_sync_never_follows_a_link_out_of_the_folder(world, tmp_path):
    co = world.open_coordinator()
    share = tmp_path / "share"
    (share / "sites").mkdir(parents=True)
    alice, bob, carol = (world.sites[n][1] for n in ("svc-alice", "svc-bob", "svc-carol"))
    whole, requests, processed = (_victim(tmp_path / n) for n in ("whole", "requests", "processed"))
    os.symlink(tmp_path / "whole", share / "sites" / alice.id.hex())  # the whole site directory is a link
    (share / "sites" / bob.id.hex()).mkdir()
    os.symlink(tmp_path / "requests", share / "sites" / bob.id.hex() / "requests")
    os.symlink(tmp_path / "processed", share / "sites" / bob.id.hex() / "processed")
    (share / "sites" / bob.id.hex() / "outbox").mkdir()
    (share / "sites" / bob.id.hex() / "outbox" / "s1-6.msve").write_bytes(b"MSVE")
    before = len(co.audit_entries())
    report = sync_folder(co, world.coordinator, share)
    # nothing outside the folder was deleted, moved, overwritten or added
    assert _unchanged(tmp_path / "whole", whole)
    assert _unchanged(tmp_path / "requests", requests)
    assert _unchanged(tmp_path / "processed", processed)
    skipped = {s["site"]: s for s in report.skipped}
    assert set(skipped) == {alice.name, bob.name} and {s["code"] for s in skipped.values()} == {"site.folder"}
    assert "link or not a directory" in skipped[bob.name]["message"]
    assert (share / "sites" / carol.id.hex() / "outbox").is_dir()  # the other sites are still served
    refused = [e for e in co.audit_entries()[before:] if e["event"] == "service.folder-refused"]
    assert {e["data"]["site"] for e in refused} == {alice.id.hex(), bob.id.hex()}
    assert report.to_dict()["skipped"] == list(report.skipped)


def test_a_site_never_writes_through_a_link_in_the_folder(world, tmp_path):
    key, record = world.sites["svc-alice"]
    share = tmp_path / "share"
    (share / "sites" / key.id.hex()).mkdir(parents=True)
    files = _victim(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", share / "sites" / key.id.hex() / "outbox")
    with pytest.raises(FolderError, match="link or not a directory"):
        push_to_folder(share, key, Sealed("s2", 7, "refusal", b"MSVE"))
    assert _unchanged(tmp_path / "elsewhere", files)


def test_a_planted_link_or_fifo_is_never_read(tmp_path):
    folder = SiteFolder.at(tmp_path, "00" * 16, create=True)
    secret = tmp_path / "secret"
    secret.write_bytes(b"MSVE coordinator secret")
    os.symlink(secret, folder.outbox / "s1-5.msve")
    os.mkfifo(folder.outbox / "s1-6.msve")  # opening a FIFO for reading would wait for a writer forever
    for name in ("s1-5.msve", "s1-6.msve"):
        claimed = folder.claim(folder.outbox / name)
        with pytest.raises(FolderError, match="not a plain file"):
            folder.read_claimed(claimed)
    assert secret.read_bytes() == b"MSVE coordinator secret"
    with pytest.raises(FolderError, match="identity id"):
        SiteFolder.at(tmp_path, "../../etc")


def test_a_flood_of_junk_envelopes_writes_a_bounded_audit(world, tmp_path):
    """Before: every junk file dropped in an outbox was one envelope.refused entry, 10,000 per site per sync."""
    from msigvault.site.sync import MAX_AUDITED_REFUSALS

    co = world.open_coordinator()
    share = tmp_path / "share"
    share.mkdir()
    key, record = world.sites["svc-carol"]
    folder = SiteFolder.at(share, record.id.hex(), create=True)
    extra = 40
    for i in range(MAX_AUDITED_REFUSALS + extra):
        (folder.outbox / f"s{i}-1.msve").write_bytes(b"MSVE" + os.urandom(200))
    before = len(co.audit_entries())
    report = sync_folder(co, world.coordinator, share)
    mine = [r for r in report.received if r["site"] == record.name]
    assert len(mine) == MAX_AUDITED_REFUSALS + extra and {r["outcome"] for r in mine} == {"refused"}
    assert len([r for r in folder.results()]) == MAX_AUDITED_REFUSALS + extra  # every file filed with its result
    entries = co.audit_entries()[before:]
    assert len([e for e in entries if e["event"] == "envelope.refused"]) == MAX_AUDITED_REFUSALS
    flood = [e for e in entries if e["event"] == "service.folder-flood"]
    assert len(flood) == 1 and flood[0]["data"]["suppressed"] == extra
    assert flood[0]["data"]["site"] == record.id.hex() and sum(flood[0]["data"]["codes"].values()) == extra


def test_a_folder_without_hard_links_still_takes_posts_and_never_overwrites(tmp_path, monkeypatch):
    """A FAT or exFAT USB stick has no hard links: a post is written by rename, and a second post of the same
    name is refused, not written over the first."""
    from msigvault.fileio import FileExists

    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    folder = SiteFolder.at(tmp_path, "00" * 16, create=True)
    path = folder.post("s1", 5, b"MSVE first")
    assert path == folder.outbox / "s1-5.msve" and path.read_bytes() == b"MSVE first"
    with pytest.raises(FileExists):
        folder.post("s1", 5, b"MSVE second")
    assert path.read_bytes() == b"MSVE first"
    assert [p.name for p in folder.outbox.iterdir()] == ["s1-5.msve"]  # no temporary file left behind
