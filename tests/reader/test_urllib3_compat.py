"""The private parts of urllib3 the fetcher uses (`reader/_urllib3_compat.py`): present in
the installed urllib3, and a urllib3 without them is one clear O2MError."""

from __future__ import annotations

import pytest
import urllib3
import urllib3.connection

from o2m_pub.errors import O2MError
from o2m_pub.reader import _urllib3_compat as compat


def test_the_installed_urllib3_has_every_private_part_the_fetcher_uses():
    """Each name the compat module reaches into exists, with the kind of value it uses:
    the method that opens the socket, the host name to resolve, the verified flag and
    the per-manager pool classes."""
    connection = urllib3.connection.HTTPSConnection("friend.example", 8443)
    assert callable(urllib3.connection.HTTPSConnection._new_conn)
    assert connection._dns_host == "friend.example"
    assert connection.is_verified is False
    assert set(urllib3.PoolManager().pool_classes_by_scheme) >= {"http", "https"}
    assert compat.missing_parts() == []


def test_the_hooks_reach_the_private_parts():
    """`dns_host`, `mark_verified` and `use_https_pool` read and set urllib3's own
    attributes, so the fetcher's overrides take effect."""
    connection = compat.HTTPSConnection("friend.example.", 443)
    assert connection.dns_host == "friend.example." and connection.host == "friend.example"
    connection.mark_verified()
    assert connection.is_verified is True
    manager = urllib3.PoolManager()
    compat.use_https_pool(manager, urllib3.HTTPSConnectionPool)
    assert manager.pool_classes_by_scheme == {"https": urllib3.HTTPSConnectionPool}
    assert type(manager.connection_from_url("https://friend.example/")) is \
        urllib3.HTTPSConnectionPool


class _NotUrllib3Connection:
    """A connection class without any of urllib3's private parts."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port


class _NotUrllib3Manager:
    """A pool manager without per-manager pool classes."""


def test_a_urllib3_without_them_is_one_clear_error():
    """The import-time check names every missing part, in one line with a hint, as an
    O2MError (what the CLI shows without a traceback)."""
    with pytest.raises(compat.Urllib3CompatError) as raised:
        compat.check(_NotUrllib3Connection, _NotUrllib3Manager)
    error = raised.value
    assert isinstance(error, O2MError) and "\n" not in str(error) and "urllib3" in error.hint
    assert compat.missing_parts(_NotUrllib3Connection, _NotUrllib3Manager) == [
        "HTTPSConnection._new_conn", "HTTPSConnection._dns_host",
        "HTTPSConnection.is_verified", "PoolManager.pool_classes_by_scheme"]
    for part in compat.missing_parts(_NotUrllib3Connection, _NotUrllib3Manager):
        assert part in str(error)
