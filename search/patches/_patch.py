"""One runtime patch of a library's function: what it replaces, why, and the guard that it still fits."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

RAY_SERIES = "2.60."  # the Ray release series every patch here was written for (pyproject.toml pins ray 2.60.*)


class PatchError(RuntimeError):
    """The library differs from the one a patch was written for: check upstream, then update or remove the patch."""


def fingerprint(function: Callable) -> str:
    """The first 16 hex digits of the SHA-256 of ``function``'s source, dedented."""
    source = textwrap.dedent(inspect.getsource(function))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass
class Patch:
    """``target`` (``module:Class.attribute``) replaced by ``make(original)`` while installed.

    Installed only where ``distribution``'s version starts with ``version`` and each of ``fingerprints``
    (``module:Class.attribute`` -> the source's fingerprint when the patch was written) still matches: the
    replaced function and any it relies on. ``upstream`` names the bug report or fix upstream.
    """

    name: str
    target: str
    make: Callable[[Callable], Callable]
    distribution: str
    version: str
    fingerprints: dict[str, str]
    upstream: str
    _original: Callable | None = field(default=None, init=False, repr=False)

    def problem(self, version: str | None = None, sources: dict[str, str] | None = None) -> str | None:
        """Why the patch does not fit the installed library (``version`` and ``sources``: stand-ins for it), or None."""
        version = importlib.metadata.version(self.distribution) if version is None else version
        if not version.startswith(self.version):
            return f"{self.distribution} is {version}, not the {self.version}x it was written for"
        for path, expected in self.fingerprints.items():
            replaced = path == self.target and self._original is not None
            found = (sources or {}).get(path) or fingerprint(_unwrap(self._original) if replaced else _resolve(path))
            if found != expected:
                return f"{path} changed in {self.distribution} {version} (source {found}, written for {expected})"
        return None

    def check(self, version: str | None = None, sources: dict[str, str] | None = None) -> None:
        """Raise ``PatchError`` (one line naming the patch and what differs) where ``problem`` finds one."""
        problem = self.problem(version, sources)
        if problem:
            raise PatchError(
                f"runtime patch {self.name!r} no longer fits: {problem}; see whether {self.upstream} is fixed, then "
                f"update or remove it (search/patches/{self.name}.py)"
            )

    @property
    def installed(self) -> bool:
        """Whether the replacement is in place."""
        return self._original is not None

    def install(self) -> None:
        """Put the replacement in place (once: installing again changes nothing)."""
        if self.installed:
            return
        owner, attribute = _owner(self.target)
        if not inspect.isfunction(owner.__dict__[attribute]):  # a classmethod or property would change kind
            raise TypeError(f"{self.target} is not a plain function: a patch replaces plain functions only")
        self._original = owner.__dict__[attribute]
        setattr(owner, attribute, self.make(getattr(owner, attribute)))

    def remove(self) -> None:
        """Put the library's own function back."""
        if not self.installed:
            return
        owner, attribute = _owner(self.target)
        setattr(owner, attribute, self._original)
        self._original = None

    @contextmanager
    def applied(self, installed: bool = True) -> Iterator[None]:
        """Installed (or, ``installed=False``, the library's own) for the block, as before it afterwards (tests)."""
        was = self.installed
        self.install() if installed else self.remove()
        try:
            yield
        finally:
            self.install() if was else self.remove()


def _owner(path: str) -> tuple[object, str]:
    """``module:Class.attribute`` -> (the class, ``attribute``)."""
    module, qualified = path.split(":")
    *classes, attribute = qualified.split(".")
    owner = importlib.import_module(module)
    for name in classes:
        owner = getattr(owner, name)
    return owner, attribute


def _resolve(path: str) -> Callable:
    owner, attribute = _owner(path)
    return _unwrap(owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute))


def _unwrap(value) -> Callable:
    """The function behind a property or a classmethod (its source is the one fingerprinted)."""
    if isinstance(value, property):
        return value.fget
    return getattr(value, "__func__", value)


def ray_patch(
    name: str, target: str, make: Callable[[Callable], Callable], fingerprints: dict[str, str], upstream: str
) -> Patch:
    """A patch of Ray ``RAY_SERIES``: see ``Patch``."""
    return Patch(name, target, make, "ray", RAY_SERIES, fingerprints, upstream)
