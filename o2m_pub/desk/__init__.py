"""The owner's desk: o2m in a browser, on 127.0.0.1 (`o2m desk`) or under one path of the
owner's TLS server (`o2m serve --desk`), behind a sign-in with the owner's passphrase.

The same core/shell split as everywhere in o2m. The core answers one `web.Request` with
one `web.DeskResponse` and does no socket I/O:

    web        requests, responses, cookies, security headers, Host/Origin checks
    forms      form and multipart bodies, with caps (pure)
    guard      sessions, CSRF tokens, the sign-in back-off (pure rules)
    passkeys   WebAuthn sign-in (the `webauthn` package's checks; passkey_pages)
    sessions   the desk's own SQLite store (.o2m/desk.db): session hashes, failures,
               passkeys and their challenges
    people     friends as the desk shows them: display names, avatars, feed health
    feed       the timeline, filters, search, one post (page models over the reader)
    images     photos of friends' public posts, fetched from their own host
    posts      the owner's posts in content/: list, read, write, delete (atomic,
               conflict-checked); photos checks and re-encodes uploads (Pillow)
    profile    the display name in o2m.toml, the picture and bio of the card
    actions    the seams where other parts plug in (reply, react, invite)
    app        the gate (Host, session, CSRF), sign-in, routing
    read, write, social   the pages and actions: reading; writing and the profile;
               friends, groups, the card and invitations
    pages      the templates (theme/) and their rendering

`server` is the shell: Twisted web around `app.DeskApp`, body caps at the headers,
the passphrase check in a thread, server-sent events. `o2m desk` runs it alone;
`o2m serve --desk` hands its resource to `host.serve` through `host.serve.Mount`, so
`host` never imports `desk`. Nothing of the desk is ever written to `build/`.

Uses `reader` (the store of friends' posts), `site` (the Markdown renderer and the
post format), `friends` (identity, cards, groups) and `protocol`.
"""
