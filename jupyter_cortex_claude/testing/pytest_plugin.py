"""pytest fixtures for the Cortex emulator: ``cortex_emulator``, ``cortex_emulator_factory``,
``cortex_keypair``.

Opt in (it is not registered as a pytest11 plugin, so installing jupyter-cortex-claude does not
load the emulator into every pytest run): ``pytest -p jupyter_cortex_claude.testing.pytest_plugin``,
or in a ``conftest.py``::

    pytest_plugins = ["jupyter_cortex_claude.testing.pytest_plugin"]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .auth import KeyPair
from .emulator import CortexEmulator


@pytest.fixture
def cortex_emulator() -> Iterator[CortexEmulator]:
    """A started emulator with the default account, user and PAT; stopped after the test."""
    with CortexEmulator() as emulator:
        yield emulator


@pytest.fixture
def cortex_emulator_factory() -> Iterator[Callable[..., CortexEmulator]]:
    """Call with :class:`CortexEmulator` keyword arguments; all are stopped at teardown."""
    started: list[CortexEmulator] = []

    def make(**kwargs: Any) -> CortexEmulator:
        emulator = CortexEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture(scope="session")
def cortex_keypair() -> KeyPair:
    """One 2048-bit RSA key pair per session (generating one is slow enough to matter)."""
    return KeyPair.generate()
