"""`o2m publish`: copy `build/` to its host, objects first and heads last.

`plan` is the pure plan over file digests; `target` says what every host offers;
`folder` and `rclone` are the two kinds of host; `record` remembers, per host, what it
already has; `publish` drives them.
"""
