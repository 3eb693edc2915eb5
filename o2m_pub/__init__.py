"""o2m: a friend-to-friend social network made of static files."""

__version__ = "0.1.0"
