"""msigvault coordinator ...: the coordinator service over HTTPS (issue 16).

Nothing of Starlette, uvicorn or SQLAlchemy is imported until a command runs (``msigvault --help`` stays fast).
"""

from __future__ import annotations

import json
import os

import click

from .common import CliError, emit, json_option

_ID_ENV = "MSIGVAULT_IDENTITY_PASSPHRASE"
NETWORKS = click.Choice(["mainnet", "testnet", "signet", "regtest"])


def register(cli: click.Group) -> None:
    cli.add_command(coordinator)


@click.group()
def coordinator():
    """The coordinator service: signing sessions over HTTPS for sites, operators and auditors (docs/service.md)."""


def _identity(path, fd):
    from .identity import _load_identity

    return _load_identity(path, fd)


@coordinator.command("serve")
@click.option("--db", "db_url", required=True, help="Database URL: sqlite:///FILE or postgresql://USER@HOST/DB.")
@click.option("--identity", "identity_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The coordinator's identity file (role coordinator); its key signs the audit log and opens "
                   "envelopes.")
@click.option("--tls-cert", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The server's TLS certificate chain (PEM).")
@click.option("--tls-key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The server's TLS private key (PEM).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (they share state through the database; use PostgreSQL for more than one).")
@click.option("-n", "--network", type=NETWORKS, default="mainnet", show_default=True,
              help="The network of the coordinator's identity record.")
@click.option("--max-body", default=4 * 1024 * 1024, show_default=True, type=int, help="Request body limit, bytes.")
@click.option("--rate", default=20.0, show_default=True, type=float,
              help="Requests a second per identity (per worker), on average.")
@click.option("--burst", default=40, show_default=True, type=int, help="Requests per identity at once (per worker).")
@click.option("--window", default=120, show_default=True, type=int,
              help="Seconds a signed request's timestamp may differ from the server's clock.")
@click.option("--passphrase-fd", type=int, default=None,
              help=f"Read the identity passphrase from this file descriptor (else ${_ID_ENV}, else a prompt).")
def serve(db_url, identity_path, tls_cert, tls_key, host, port, workers, network, max_body, rate, burst, window,
          passphrase_fd):
    """Serve the coordinator's sessions over HTTPS (TLS is required; every request is signed).

    \b
    Routes (docs/service.md): GET /v1/requests and POST /v1/envelopes for keyholder sites,
    POST /v1/sessions and /v1/sessions/ID/cancel for operators, GET /v1/audit for auditors,
    GET /v1/sessions/ID for all, GET /v1/coordinator (the coordinator's public record).
    """
    import uvicorn

    from ..keys.keystore import read_passphrase
    from ..service.app import CONFIG_ENV, ServiceConfig, open_app

    limits = ServiceConfig(max_body=max_body, window=window, rate=rate, burst=burst)
    secret = read_passphrase(prompt=f"Passphrase for identity {identity_path}: ", env_var=_ID_ENV, fd=passphrase_fd)
    from ..identity import IdentityKey

    key = IdentityKey.load(identity_path, secret)
    if key.public.role != "coordinator":
        raise CliError(f"{identity_path} is a {key.public.role} identity: the service runs with a coordinator identity")
    app = open_app(db_url, key, network=network, config=limits)  # migrates, checks the key is authorised
    options = {"host": host, "port": port, "ssl_certfile": tls_cert, "ssl_keyfile": tls_key,
               "log_level": "info", "server_header": False,
               "timeout_graceful_shutdown": 10}
    click.echo(f"coordinator service {key.public.name!r} ({key.id.hex()}) on https://{host}:{port}, "
               f"{workers} worker(s)", err=True)
    if workers == 1:
        uvicorn.run(app, **options)
        return
    os.environ[CONFIG_ENV] = json.dumps({"db": db_url, "identity": os.path.abspath(identity_path),
                                         "network": network, "max_body": max_body, "window": window, "rate": rate,
                                         "burst": burst})
    os.environ[_ID_ENV] = secret  # the workers unlock the identity themselves (inherited, never printed)
    uvicorn.run("msigvault.service.app:from_environment", factory=True, workers=workers, **options)


@coordinator.command("enroll")
@click.option("--db", "db_url", required=True, help="Database URL: sqlite:///FILE or postgresql://USER@HOST/DB.")
@click.option("--identity", "identity_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The coordinator's identity file (its key signs the audit entry).")
@click.option("--vault", "vault_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Register the site records with this vault first (one record per cosigner).")
@click.argument("records", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--passphrase-fd", type=int, default=None,
              help=f"Read the identity passphrase from this file descriptor (else ${_ID_ENV}, else a prompt).")
@json_option
def enroll(db_url, identity_path, vault_path, records, passphrase_fd, as_json):
    """Enrol identity records with the service: keyholder sites (with --vault), auditors, operators.

    A record's role decides what it may do: keyholder-site pulls requests and submits for its cosigner,
    auditor reads, coordinator (an operator) proposes and cancels sessions.
    """
    from ..coordinator.audit import Identity
    from ..coordinator.db import Database
    from ..coordinator.sessions import Coordinator
    from ..identity import IdentityRecord
    from ..identity.identity import MAX_RECORD_SIZE
    from ..service.store import ServiceStore, enroll_sites
    from .common import load_vault
    from .identity import _read_limited

    key = _identity(identity_path, passphrase_fd)
    parsed = [IdentityRecord.from_bytes(_read_limited(p, MAX_RECORD_SIZE)) for p in records]
    co = Coordinator(Database.open(db_url), Identity(key.signing))
    store = ServiceStore(co.db)
    sites = [r for r in parsed if r.role == "keyholder-site"]
    if sites:
        if vault_path is None:
            raise CliError("keyholder-site records are registered with their vault: give --vault VAULTFILE")
        enroll_sites(co, store, load_vault(vault_path), sites)
    done = [store.enroll(co, r) for r in parsed if r.role != "keyholder-site"]
    done += [store.lookup(r.id.hex()) for r in sites]  # type: ignore[misc]
    rows = [{"id": e.id, "name": e.name, "role": e.role} for e in done if e is not None]
    emit(as_json, rows, "\n".join(f"enrolled {r['name']} ({r['id']}) as {r['role']}" for r in rows))


@coordinator.command("revoke")
@click.option("--db", "db_url", required=True, help="Database URL: sqlite:///FILE or postgresql://USER@HOST/DB.")
@click.option("--identity", "identity_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The coordinator's identity file (its key signs the audit entry).")
@click.argument("identity_id")
@click.option("--passphrase-fd", type=int, default=None,
              help=f"Read the identity passphrase from this file descriptor (else ${_ID_ENV}, else a prompt).")
@json_option
def revoke(db_url, identity_path, identity_id, passphrase_fd, as_json):
    """Remove an identity's enrolment (IDENTITY_ID, 32 hex): every service process refuses it within 10 s.

    A site's key stays listed in its vault's registration (so its past submissions still verify);
    register a new site record for that cosigner to replace it.
    """
    from ..coordinator.audit import Identity
    from ..coordinator.db import Database
    from ..coordinator.sessions import Coordinator
    from ..service.store import ServiceStore

    ident = identity_id.strip().lower()
    if len(ident) != 32 or any(c not in "0123456789abcdef" for c in ident):
        raise CliError(f"an identity id is 32 hex digits, not {identity_id!r}")
    key = _identity(identity_path, passphrase_fd)
    co = Coordinator(Database.open(db_url), Identity(key.signing))
    if not ServiceStore(co.db).revoke(co, ident):
        raise CliError(f"identity {ident} is not enrolled with this coordinator: nothing was changed")
    emit(as_json, {"revoked": ident}, f"revoked {ident}")
