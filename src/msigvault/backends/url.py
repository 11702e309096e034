"""Backend URLs: what ``--backend`` accepts.

    core+http://user:password@127.0.0.1:18443        Bitcoin Core JSON-RPC (also core+https://)
    core+http://127.0.0.1:18443?cookie=DIR/.cookie   ... with Core's cookie file
    core+http://...?wallet=vault                     ... with a watch-only descriptor wallet
    esplora+http://127.0.0.1:3002                    Esplora REST (also esplora+https://host/api)
    regtest:DIR                                      a regtest chain directory, in this process
    bitcoinlib:PROVIDER                              a bitcoinlib Service provider (name or type)
    electrum+tcp://127.0.0.1:50001                   Electrum protocol (ElectrumX, Fulcrum, electrs)
    electrum+ssl://host:50002?fingerprint=HEX        ... over TLS, certificate pinned (or ca=FILE)

Query options for every network backend: ``timeout`` (seconds), ``retries``; Core: ``batch``,
``wallet``, ``cookie``; Esplora: ``concurrency``; Electrum: ``batch``, ``ca``, ``fingerprint``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ..network import Network
from .base import Backend, BackendError, BackendUnsupported, RetryPolicy, redact

KINDS = ("core", "esplora", "regtest", "bitcoinlib", "electrum")
OPTIONS = {
    "core": {"timeout", "retries", "batch", "wallet", "cookie"},
    "esplora": {"timeout", "retries", "concurrency"},
    "electrum": {"timeout", "retries", "batch", "ca", "fingerprint"},
}
MAX_URL = 2048


class BackendUrlError(BackendError):
    """A --backend URL is malformed or names an unknown backend."""

    code = "backend.url"


@dataclass(frozen=True)
class BackendSpec:
    """A parsed backend URL: ``kind``, the ``target`` (URL, directory or provider) and options."""

    kind: str
    target: str
    options: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"BackendSpec({self.kind!r}, {redact(self.target)!r})"

    def policy(self) -> RetryPolicy:
        base = RetryPolicy()
        return RetryPolicy(timeout=_number(self.options.get("timeout"), base.timeout, "timeout"),
                           retries=int(_number(self.options.get("retries"), base.retries, "retries")),
                           backoff=base.backoff)


def parse_backend_url(text: str) -> BackendSpec:
    """Parse a --backend URL; :class:`BackendUrlError` says what is wrong and what is accepted."""
    if not isinstance(text, str) or not text.strip():
        raise BackendUrlError("give a backend URL, e.g. core+http://user:pass@127.0.0.1:18443")
    text = text.strip()
    if len(text) > MAX_URL:
        raise BackendUrlError(f"a backend URL is at most {MAX_URL} characters")
    for simple in ("regtest", "bitcoinlib"):
        if text.startswith(simple + ":") and not text.startswith(simple + "://"):
            target = text[len(simple) + 1:]
            if not target:
                raise BackendUrlError(f"{simple}: needs a {'directory' if simple == 'regtest' else 'provider'}, "
                                      f"e.g. {simple}:{'chain/' if simple == 'regtest' else 'blockstream'}")
            return BackendSpec(simple, target)
    scheme, sep, _rest = text.partition("://")
    kind, plus, transport = scheme.partition("+")
    if not sep or not plus or kind not in ("core", "esplora", "electrum"):
        raise BackendUrlError(
            f"{redact(text)!r} is not a backend URL: use core+http://, esplora+https://, "
            "electrum+ssl://, regtest:DIR or bitcoinlib:PROVIDER")
    allowed = ("tcp", "ssl") if kind == "electrum" else ("http", "https")
    if transport not in allowed:
        raise BackendUrlError(f"{kind} URLs start with {' or '.join(f'{kind}+{t}://' for t in allowed)}")
    parts = urlsplit(text[len(kind) + 1:])
    if not parts.hostname:
        raise BackendUrlError(f"{redact(text)!r} names no host")
    try:
        parts.port
    except ValueError:
        raise BackendUrlError(f"{redact(text)!r} has an invalid port") from None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - OPTIONS[kind]
    if unknown:
        raise BackendUrlError(f"unknown option {sorted(unknown)[0]!r} for a {kind} URL; "
                              f"known: {', '.join(sorted(OPTIONS[kind]))}")
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return BackendSpec(kind, target, options)


def open_backend(text: "str | BackendSpec", network: "Network | str", *,
                 check_network: bool = True) -> Backend:
    """The backend a URL names, for ``network``; its network is checked unless told not to."""
    spec = text if isinstance(text, BackendSpec) else parse_backend_url(text)
    network = Network.from_name(network)
    backend = _make(spec, network)
    if check_network:
        try:
            backend.check_network()
        except BaseException:
            backend.close()
            raise
    return backend


def _make(spec: BackendSpec, network: Network) -> Backend:
    if spec.kind == "core":
        from .core import CoreBackend

        return CoreBackend(spec.target, network, cookie=spec.options.get("cookie"),
                           wallet=spec.options.get("wallet") or None, policy=spec.policy(),
                           batch_size=int(_number(spec.options.get("batch"), 500, "batch")))
    if spec.kind == "esplora":
        from .esplora import EsploraBackend

        return EsploraBackend(spec.target, network, policy=spec.policy(),
                              concurrency=int(_number(spec.options.get("concurrency"), 8, "concurrency")))
    if spec.kind == "regtest":
        from .regtest import RegtestBackend

        if network.name != "regtest":
            from .base import BackendNetworkMismatch

            raise BackendNetworkMismatch(f"regtest:{spec.target} is a regtest chain, but the vault "
                                         f"is for {network.name}", what="network check")
        return RegtestBackend.open(spec.target)
    if spec.kind == "bitcoinlib":
        from .bitcoinlib_service import BitcoinlibBackend

        return BitcoinlibBackend(spec.target, network)
    if spec.kind == "electrum":
        from .electrum import DEFAULT_BATCH, ElectrumBackend

        parts = urlsplit(spec.target)
        if parts.path not in ("", "/"):
            raise BackendUrlError(f"an Electrum URL has no path: electrum+{parts.scheme}://host:port")
        if parts.scheme == "tcp" and (spec.options.get("ca") or spec.options.get("fingerprint")):
            raise BackendUrlError("ca= and fingerprint= are for TLS: the URL needs electrum+ssl://")
        return ElectrumBackend(parts.hostname or "", parts.port, network, tls=parts.scheme == "ssl",
                               ca_file=spec.options.get("ca") or None,
                               fingerprint=spec.options.get("fingerprint") or None,
                               policy=spec.policy(),
                               batch_size=int(_number(spec.options.get("batch"), DEFAULT_BATCH, "batch")))
    raise BackendUnsupported(f"unknown backend kind {spec.kind!r}", what="backend")


def _number(value: Optional[str], default: float, name: str) -> float:
    if value is None:
        return default
    try:
        n = float(value)
    except ValueError:
        raise BackendUrlError(f"option {name}={value!r} must be a number") from None
    if n < 0 or n > 1_000_000:
        raise BackendUrlError(f"option {name}={value!r} is out of range")
    return n
