"""Writing and building the site: from `content/` to `build/`.

`content` reads a post's file, `markup` turns its Markdown into HTML (`code_cache`
keeps its highlighted code blocks between builds, `.o2m/highlight.db`), `plan` decides
which pages exist and which changed, `render` fills the Jinja2 templates, `syndication`
writes the feeds, `writer` writes `build/` atomically and `manifest` remembers the last
build. `build` drives them in its order of work, one phase at a time: `sources` scans
and renders the posts, `audience` says who may read them, `outputs` tracks what to
write, keep or delete, `pages` renders the pages, `private_steps` adds friends'
encrypted feeds, `snapshot` holds the manifest as last committed and `report` what the
build did. `mentions` keeps Webmentions received and sent (`.o2m/mentions.db`) and
`mention_plan` decides, purely, which are due and what a post's page shows of them
(PROTOCOL.md §1.6). `watch` rebuilds on every save. `scaffold` makes a new site; `samples/`
holds the posts of `o2m init` and `o2m demo` as files (`sample_trees` reads and dates
them), and `theme/` the built-in
templates. `own_posts` finds one of the owner's posts by the id or reference its readers
know it by (PROTOCOL.md §4.1), for the owner's view of its thread.

Uses `friends` (who reads a private post) and `protocol`; never `host` or `reader`.
"""
