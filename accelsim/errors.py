"""The one error type for user mistakes, so the CLI can print it on one line and exit 2."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_path(loc: Sequence[str | int]) -> str:
    """Render a field location as users write it: ``layers[3].kernel``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class AccelsimError(Exception):
    """A mistake in user input: which file, which field, what is wrong, what is allowed."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        path: str = "",
        allowed: Iterable[object] | str | None = None,
    ) -> None:
        self.file = file
        self.path = path
        self.message = message
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.allowed = allowed
        #: further problems found in the same file, reported as a count to keep one line
        self.more = 0
        super().__init__(message)

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.path) if p]
        text = ": ".join(parts + [self.message])
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        if self.more:
            text += f" [+{self.more} more problem{'s' if self.more > 1 else ''} in this file]"
        return text
