"""Shared fixtures. `sandbox`: a fresh Redox sandbox subprocess per test (see sandbox_control)."""

import pytest

from sandbox_control import SandboxProcess


@pytest.fixture
def sandbox():
    """A started SandboxProcess with default settings, stopped after the test."""
    with SandboxProcess() as process:
        yield process
