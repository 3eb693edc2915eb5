"""Hosting `build/`: serving it over HTTPS, or publishing it to any file host.

`static_rules` decides, purely, what a request path may get and with which headers;
`tls` keeps the site's certificate and the server's TLS settings; `inbox` is the one
POST endpoint (PROTOCOL.md §5: a dispatcher by magic, with rate limits, whose handlers
the command wires in) and the rule for request bodies; `webmention` the Webmention
endpoint's checks (§1.6), on the inbox's machinery; `serve` is the Twisted server
around them, with its `file_cache`, its sockets (`listen`), its connections
(`connection`: deadlines, h2, and the fast path that answers a plain GET or HEAD,
read by the pure `fast_request`, through `fast_path` without Twisted's parser), its
TLS transport (`tls_transport`: OpenSSL on the socket, through Python's `ssl`), the
live reload of `--watch` (`live_reload`) and, fenced
in `_twisted_compat`, every private part of Twisted it uses. `publish/` copies `build/`
to a folder or an rclone remote in the order that keeps readers safe.

Uses `protocol` (the certificate pin in the card); never `site`, `friends` or `reader`.
"""
