"""Reading friends: fetching their feeds, keeping them, showing them.

`fetch_plan` turns downloaded bytes and the stored state into one update or a refusal
(PROTOCOL.md §3.5), with no sockets and no SQLite; `model` holds the values it shares
with the store; `http_fetch` moves the bytes with hard limits (urllib3's private parts
fenced in `_urllib3_compat`); `store` keeps what was accepted in SQLite and
`attachments` the decrypted attachments beside it; `sanitize` makes a friend's post
safe to show; `timeline` and `web` show it in the terminal and in the browser.
`public_web` and `webmention` read the public web for Webmention (PROTOCOL.md §1.6):
discovering endpoints, sending, verifying sources, with caps and a rule on addresses.

Uses `friends` (whom to fetch, with which keys) and `protocol`; never `site` or `host`.
"""
