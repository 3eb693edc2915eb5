"""Pull (issue 13): the original poster publishes to a plain folder behind nginx
(HOSTING.md's configuration), which has no inbox. Bob's build cannot tell Ada at once
(nginx refuses the POST); Ada's next fetch finds his reply anyway, her publish links it,
and Cyd reads it through her thread, fetched from Bob's site."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner
from support.people import Person, server_context

from o2m_pub.cli import main
from o2m_pub.host.publish.publish import publish_site
from o2m_pub.reader import thread_store
from o2m_pub.reader.store import ReaderStore

sys.path.insert(0, str(Path(__file__).parent))
from test_hosting import start_nginx  # noqa: E402 - the tested nginx, started as there


def cli(root: Path, *args: str):  # noqa: ANN201 - click Result
    result = CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_a_thread_on_nginx_works_by_pull_alone(tmp_path, ca, monkeypatch):
    """Ada on nginx; Bob and Cyd on their own servers: Bob's reply reaches Cyd."""
    monkeypatch.setenv("O2M_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("O2M_KDF", "interactive")
    authority, bundle = ca
    monkeypatch.setenv("O2M_CA_BUNDLE", bundle)
    cert = authority.issue_cert("localhost", "127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    (tmp_path / "host").mkdir()
    host = start_nginx(tmp_path / "host", (str(chain), str(key), bundle))
    context = server_context(authority)

    class OnNginx:
        url, port = host.url, host.port

        def __init__(self, folder: Path, context: object) -> None:
            pass

        def stop(self) -> None:
            pass

    try:
        ada = Person(tmp_path, "ada", context, server_cls=OnNginx)
        bob, cyd = Person(tmp_path, "bob", context), Person(tmp_path, "cyd", context)
        for x, y in ((ada, bob), (ada, cyd)):
            x.befriend(y)
            y.befriend(x)
        ada.post("hello", "Hello friends", "friends")
        ada.build()
        publish_site(ada.root, str(host.root))
        bob.fetch(bundle)
        (post,) = bob.timeline()
        cli(bob.root, "reply", post.short_id, "--text", "Pulled, not pushed.")
        built = cli(bob.root, "build")
        assert "was not told at once" in built.stderr  # nginx has no inbox
        assert ada.fetch(bundle)["bob"].ok  # pull
        ada.build()
        publish_site(ada.root, str(host.root))
        cyd.fetch(bundle)
        with ReaderStore.open(cyd.root) as store:
            (cyd_post,) = store.timeline()
            key_of = {n: k for k, n in thread_store.friend_names(store.db).items()}
            replies, _ = thread_store.thread(store.db,
                                             f"o2m:{key_of['ada']}/{cyd_post.id}")
        assert [(r.markdown or "").strip() for r in replies] == ["Pulled, not pushed."]
        bob.server.stop()
        cyd.server.stop()
    finally:
        host.stop()
