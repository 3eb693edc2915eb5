"""The one error tree of o2m. Each class's docstring is the user-facing text.

    O2MError                      anything o2m reports to the user as one line
    ├── ConfigError               o2m.toml is missing or wrong
    ├── SiteError                 the site folder is not usable (exists, locked, not found)
    ├── PostError                 one post cannot be built (file and line known)
    └── BuildFailed               a build finished, but some posts failed

`cli.py` turns each of these into ``o2m: error: <where>: <what>`` plus a hint and a
non-zero exit; everything else is a bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations

from dataclasses import dataclass


class O2MError(Exception):
    """Something went wrong."""

    hint: str | None = None
    path: str | None = None

    def __init__(self, message: str | None = None, *, hint: str | None = None,
                 path: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        if hint is not None:
            self.hint = hint
        if path is not None:
            self.path = path

    @property
    def where(self) -> str | None:
        """The place (a file, file:line, a URL) the message is about, when there is one."""
        return self.path


class ConfigError(O2MError, ValueError):
    """The site configuration (o2m.toml) is not valid."""

    def __init__(self, message: str, *, path: str = "o2m.toml", line: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path, self.line = path, line

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


class SiteError(O2MError):
    """This folder is not an o2m site."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one post: where it is, what is wrong, how to mend it."""

    path: str
    line: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class PostError(O2MError, ValueError):
    """A post cannot be built."""

    def __init__(self, path: str, line: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problem = Problem(path, line, message, hint)

    @property
    def where(self) -> str:
        return f"{self.problem.path}:{self.problem.line}"


class BuildFailed(O2MError):
    """Some posts have problems; the rest of the site was built."""

    def __init__(self, problems: list[Problem]) -> None:
        n = len(problems)
        super().__init__(f"{n:,} problem{'s' if n != 1 else ''} in the posts above; "
                         "the rest of the site was built",
                         hint="fix the files named above and run `o2m build` again (a post "
                         "that does not parse keeps its last good page; an unknown audience "
                         "name is left out of its audience)")
        self.problems = problems
