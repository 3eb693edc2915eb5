"""The private parts of urllib3 that the fetcher builds on, fenced into this one module
and checked when it is imported: a urllib3 that renamed or dropped one of them fails
at once with one clear error, not in the middle of a friend's fetch. (ADR 0004 is to
list them with Twisted's.) They are:

- ``HTTPSConnection._new_conn()``: the step that opens the TCP connection; overridden
  (as `open_socket`) so that each address is tried within the friend's deadline
  (THREATS.md 24);
- ``HTTPSConnection._dns_host``: the host name as given, to resolve (`dns_host`);
- ``HTTPSConnection.is_verified``: set once the card's TLS pin matched (§2.4), as urllib3
  sets it after its own CA check (`mark_verified`);
- ``PoolManager.pool_classes_by_scheme``: the pool class per scheme, set per manager so
  that https uses our connections and plain http has no pool at all (`use_https_pool`).

    Urllib3CompatError (O2MError)   the installed urllib3 lacks one of these
"""

from __future__ import annotations

import socket

import urllib3
import urllib3.connection

from o2m_pub.errors import O2MError


class Urllib3CompatError(O2MError):
    """The installed urllib3 lacks a part that o2m's fetcher uses."""

    hint = "install a urllib3 that o2m supports: pip install 'urllib3>=2.7,<3'"


def missing_parts(connection_cls: type = urllib3.connection.HTTPSConnection,
                  manager_cls: type = urllib3.PoolManager) -> list[str]:
    """The private parts of urllib3 named in this module's docstring that these classes
    lack (none for the urllib3 o2m supports). Makes a connection object and a pool
    manager to look at them; neither opens a socket."""
    missing = []
    if not callable(getattr(connection_cls, "_new_conn", None)):
        missing.append("HTTPSConnection._new_conn")
    if not isinstance(getattr(connection_cls("localhost", 443), "_dns_host", None), str):
        missing.append("HTTPSConnection._dns_host")
    if not isinstance(getattr(connection_cls, "is_verified", None), bool):
        missing.append("HTTPSConnection.is_verified")
    if not isinstance(getattr(manager_cls(), "pool_classes_by_scheme", None), dict):
        missing.append("PoolManager.pool_classes_by_scheme")
    return missing


def check(connection_cls: type = urllib3.connection.HTTPSConnection,
          manager_cls: type = urllib3.PoolManager) -> None:
    """Raises:
        Urllib3CompatError: a part is missing (`missing_parts`)."""
    missing = missing_parts(connection_cls, manager_cls)
    if missing:
        raise Urllib3CompatError(f"urllib3 {getattr(urllib3, '__version__', '?')} lacks "
                                 f"{', '.join(missing)}, which o2m's fetcher uses")


class HTTPSConnection(urllib3.connection.HTTPSConnection):
    """urllib3's HTTPS connection, with the private hooks the fetcher uses under
    public names."""

    def _new_conn(self) -> socket.socket:  # urllib3's hook: opens the TCP connection
        return self.open_socket()

    def open_socket(self) -> socket.socket:
        """Open the TCP connection: urllib3's own way, unless a subclass says otherwise."""
        return super()._new_conn()

    @property
    def dns_host(self) -> str:
        """The host name to resolve, as given (with a trailing dot, if any)."""
        return self._dns_host

    def mark_verified(self) -> None:
        """Tell urllib3 the server is verified (by a check of our own)."""
        self.is_verified = True


def use_https_pool(manager: urllib3.PoolManager,
                   pool_cls: type[urllib3.HTTPSConnectionPool]) -> None:
    """Make `manager` open https URLs with `pool_cls`, and have no pool for any other
    scheme."""
    manager.pool_classes_by_scheme = {"https": pool_cls}


check()
