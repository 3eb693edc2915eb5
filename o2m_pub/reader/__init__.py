"""Reading friends: fetching their feeds, keeping them, showing them.

`fetch_plan` turns downloaded bytes and the stored state into one update or a refusal
(PROTOCOL.md §3.5), with no sockets and no SQLite, and `card_refresh` a friend's
published card into an adopted or refused card (§2.4); `model` holds the values they
share with the store; `http_fetch` moves the bytes with hard limits (urllib3's private
parts fenced in `_urllib3_compat`); `fetch_run` runs a fetch of every friend; `store`
keeps what was accepted in SQLite, `attachments` the decrypted attachments beside it,
`search` its full-text index, `spool` a fetch's long texts on disk until their
update is stored, and `avatars` friends' pictures (checked, kept by hash); `sanitize`
makes a friend's post safe to show, and `render` runs it once per post, at fetch
time, in a child process with hard limits; `timeline` shows it in the terminal
(`terminal` turns a public post's HTML into Markdown for `o2m show`), and the desk
(`o2m_pub.desk`) in the browser.
Conversations (PROTOCOL.md §4): `thread_fetch` checks the replies and reactions a
friend's items carry and the links an original poster's items hold (pure, like
`fetch_plan`); `thread_store` keeps them (store schema 3) and makes the views of a thread
and the links for the owner's next build; `replying` is the core of `o2m reply`,
`o2m react` and the desk's forms.
`public_web` and `webmention` read the public web for Webmention (PROTOCOL.md §1.6):
discovering endpoints, sending, verifying sources, with caps and a rule on addresses.

Uses `friends` (whom to fetch, with which keys) and `protocol`; never `site` or `host`.
"""
