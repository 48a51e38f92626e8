"""User-facing errors. The library raises these; the CLI prints them on one line and exits 1."""

from __future__ import annotations

from collections.abc import Sequence


class EdgeDigitsError(Exception):
    """A problem the user can fix; the message says how."""


class OptionError(EdgeDigitsError):
    """A bad setting. The library names it as its callers spell it (`batch_size must be at least
    1`); the CLI names the flag instead (`--batch-size must be at least 1`). Other settings
    the message points to are {0}, {1}... in `message`, named in `others`, and rendered the
    same way."""

    def __init__(self, option: str, message: str, *others: str) -> None:
        self.option, self.detail, self.others = option, message, others
        super().__init__(f"{option} {self._named(others)}")

    def for_cli(self) -> str:
        return f"{_flag(self.option)} {self._named([_flag(o) for o in self.others])}"

    def _named(self, names: Sequence[str]) -> str:
        """The message with {k} replaced by the k-th name; any other brace (a path, JSON) stays."""
        text = self.detail
        for k, name in enumerate(names):
            text = text.replace("{" + str(k) + "}", name)
        return text


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


class DataError(EdgeDigitsError):
    """A data source is missing, unreadable or not MNIST-shaped."""


class ModelError(EdgeDigitsError):
    """A model file is missing, corrupt or of the wrong shape."""


class MissingExtraError(EdgeDigitsError):
    """An optional dependency group is not installed."""

    def __init__(self, what: str, extra: str = "train") -> None:
        super().__init__(
            f"{what} needs the '{extra}' extra, which is not installed: from the edgedigits "
            f'checkout run  pip install ".[{extra}]"  (or pip install "edgedigits-*.whl[{extra}]")'
        )


class ParityError(EdgeDigitsError):
    """An exported model disagrees with its Keras source beyond tolerance."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (C++ runtimes print pages), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
