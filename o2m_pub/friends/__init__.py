"""The owner's side of friendship: who I am, who my friends are, what each may read.

`identity` keeps the owner's keys (sealed with their passphrase), the next key their
card commits to, the public-feed key and the own card on disk; `key_rotation` moves
the site to its next key (PROTOCOL.md §2.5); `friend_store` keeps friends' verified
cards and the groups they are in, under `keys/`, and `add_rules` decides, purely,
whether a card may join them;
`private_feeds` plans, purely, the objects, heads and archive pages each friend's feed
needs (PROTOCOL.md §3), given the posts and what was published before.
`invitations` keeps the owner's invitations (`.o2m/invites.json`) and takes the
acceptances that come back (PROTOCOL.md §2.7), adding the friend through the store.
`conversation_files` keeps the owner's reactions and the links of the owner's threads
for the next build (PROTOCOL.md §4), and `notice_queue` the notices friends push to
`o2m serve` (§4.7) until the next fetch.

Uses `protocol` for every format and signature; never `site`, `host` or `reader`.
"""
