"""Where analysis may connect: the operator's ``--analysis-allow`` list, checked on every read.

A metric's URL comes from repository content, so whoever can push to an Application's repository
chooses where the controller sends a GET - and, before issue 13, got the answer back in the
Rollout's status. The defence has three parts, all here:

* **An allow-list of URL globs** (``--analysis-allow``, repeatable; empty refuses every URL). A
  URL is matched in a normal form - ``scheme://host[:port]/path[?query]``, scheme and host in
  lower case, the default port left out, no user info - so ``http://ok@169.254.169.254/`` is
  matched as ``http://169.254.169.254/``. ``*`` crosses ``/``: end an entry's host with ``/`` or
  ``:`` (``http://prometheus.monitoring:9090/*``).
* **Special addresses need an entry naming the host.** Every address the host resolves to is
  checked; loopback, link-local, unspecified and cloud metadata addresses and names are refused
  unless a matching entry has the host written out, without wildcards
  (``http://127.0.0.1:9090/*``). A wildcard entry (``https://*.example.com/*``) never reaches them.
* **The connection goes to the checked addresses.** The request is sent to one of the addresses
  that were checked, with the URL's host in ``Host`` and, for https, in SNI and the certificate
  check, so a name that resolves differently a moment later (DNS rebinding) changes nothing.
  Redirects are not followed at all (``providers``).

Name resolution has its own deadline (``resolve``), run in a small thread pool, because
``getaddrinfo`` cannot be interrupted.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from fnmatch import fnmatchcase

FLAG = "--analysis-allow"
NOT_ALLOWED = f"URL not allowed by {FLAG}"

_DEFAULT_PORTS = {"http": 80, "https": 443, "smtp": 25}
WEB_SCHEMES = ("http", "https")
_WILDCARDS = frozenset("*?[")
# Cloud metadata endpoints that are not link-local or loopback (169.254.169.254 is link-local).
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200")
)
_METADATA_NAMES = frozenset(
    (
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.platformequinix.com",
    )
)
_RESOLVERS = concurrent.futures.ThreadPoolExecutor(
    max_workers=4, thread_name_prefix="analysis-resolve"
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(Exception):
    """The URL may not be read; the message is a fixed reason, safe for status and logs."""


@dataclass(frozen=True)
class Endpoint:
    """A URL that passed the allow-list, with the addresses it may be reached at."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    addresses: tuple[tuple[socket.AddressFamily, str], ...]

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return _PinnedTLSConnection(self, timeout, ssl.create_default_context())
        return _PinnedConnection(self, timeout)


def _special(address: Address) -> str:
    """What kind of address (only an entry naming the host reaches it), or ""."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return "a metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    return ""


def _glob_host(glob: str) -> str:
    """The host part of an entry (``https://HOST:port/...``), lower case."""
    rest = glob.split("://", 1)[1]
    authority = rest.split("/", 1)[0]
    if authority.startswith("["):
        return authority[1 : authority.find("]")].lower()
    return authority.rsplit(":", 1)[0].lower() if authority.count(":") == 1 else authority.lower()


@dataclass(frozen=True)
class AnalysisAllowList:
    """The operator's URL globs. Construct with ``parse`` to get a clear error for a bad entry."""

    globs: tuple[str, ...] = ()
    flag: str = FLAG
    """The flag the entries came from, named in refusals (notifications reuse this check under
    ``--notification-allow``, where ``smtp://HOST:PORT`` names a mail server too)."""
    schemes: tuple[str, ...] = WEB_SCHEMES

    @classmethod
    def parse(
        cls,
        entries: list[str] | tuple[str, ...],
        *,
        flag: str = FLAG,
        schemes: tuple[str, ...] = WEB_SCHEMES,
    ) -> AnalysisAllowList:
        """Validated entries, scheme and host in lower case like the URLs they are matched
        against; ``ValueError`` naming the flag and the entry otherwise."""
        globs: list[str] = []
        for entry in entries:
            scheme, sep, rest = entry.partition("://")
            scheme = scheme.lower()
            if not sep or scheme not in schemes:
                starts = " or ".join(f"{s}://" for s in schemes)
                raise ValueError(f"{flag} {entry!r}: must start with {starts}")
            if not rest or rest.startswith(("/", ":")):
                raise ValueError(f"{flag} {entry!r}: has no host")
            authority, slash, path = rest.partition("/")
            if "@" in authority:
                raise ValueError(f"{flag} {entry!r}: must not contain user info")
            globs.append(f"{scheme}://{authority.lower()}{slash}{path}")
        return cls(tuple(globs), flag, schemes)

    def check(self, url: str, *, timeout: float) -> Endpoint:
        """The endpoint to connect to for ``url``; ``EndpointRefused`` with a fixed reason."""
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            raise EndpointRefused(f"only {' and '.join(self.schemes)} URLs are read")
        try:
            host, port = parts.hostname, parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise EndpointRefused("the URL's port is not a number") from None
        if not host:
            raise EndpointRefused("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise EndpointRefused("the URL must not carry user info")
        shown_host = f"[{host}]" if ":" in host else host
        authority = shown_host if port == _DEFAULT_PORTS[scheme] else f"{shown_host}:{port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        normal = f"{scheme}://{authority}{target}"
        matching = [g for g in self.globs if fnmatchcase(normal, g)]
        if not matching:
            raise EndpointRefused(f"URL not allowed by {self.flag}")
        named = any(_glob_host(g) == host and not _WILDCARDS & set(_glob_host(g)) for g in matching)
        if host.rstrip(".") in _METADATA_NAMES and not named:
            raise EndpointRefused(f"{host} is a metadata endpoint; {_name_it(self.flag)}")
        addresses = resolve(host, port, timeout=timeout)
        for _, address in addresses:
            kind = _special(ipaddress.ip_address(address.split("%", 1)[0]))
            if kind and not named:
                raise EndpointRefused(f"{host} resolves to {kind}; {_name_it(self.flag)}")
        return Endpoint(scheme, host, port, target, addresses)


def _name_it(flag: str) -> str:
    return f"only a {flag} entry naming this host without wildcards allows it"


def resolve(
    host: str, port: int, *, timeout: float
) -> tuple[tuple[socket.AddressFamily, str], ...]:
    """Every (family, address) ``host`` resolves to, within ``timeout``."""
    future = _RESOLVERS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise EndpointRefused(f"resolving {host} took longer than {timeout:g}s") from None
    except (socket.gaierror, UnicodeError):
        raise EndpointRefused(f"{host} does not resolve") from None
    found = dict.fromkeys((family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos)
    if not found:
        raise EndpointRefused(f"{host} does not resolve")
    return tuple(found)


def open_socket(endpoint: Endpoint, timeout: float) -> socket.socket:
    """A socket connected to the first of the endpoint's checked addresses that answers."""
    last: OSError = ConnectionRefusedError("no address")
    for family, address in endpoint.addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((address, endpoint.port))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last


class _PinnedConnection(http.client.HTTPConnection):
    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout=timeout)
        self._endpoint = endpoint

    def connect(self) -> None:
        self.sock = open_socket(self._endpoint, float(self.timeout or 0) or 10.0)


class _PinnedTLSConnection(http.client.HTTPSConnection):
    def __init__(self, endpoint: Endpoint, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout=timeout, context=context)
        self._endpoint = endpoint
        self._tls = context

    def connect(self) -> None:
        sock = open_socket(self._endpoint, float(self.timeout or 0) or 10.0)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self._endpoint.host)
