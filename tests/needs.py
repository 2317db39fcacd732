"""What a test needs from outside Python's standard set-up: skipped, saying how to get it, or failed in CI.

``./run test`` installs every extra and tool the suite uses (the export extra, llama-cpp-python with
the SmolLM2 model, Chromium, ffmpeg, the dash.js plugin's node packages). Where one is missing
outside CI, the tests that need it skip and say what is missing and how to install it. In CI
(``CI=true``, which CI services set) a missing piece is a failure: a skip there would turn a broken
set-up into a green run.
"""

from __future__ import annotations

import importlib.util
import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True where the environment says it is CI (``CI=true`` or ``CI=1``)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(what: str, how: str, module_level: bool = False) -> NoReturn:
    """Skip the test (or, with ``module_level``, the whole module) because ``what`` is missing; ``how``
    says how to install it. Under ``CI=true`` this fails instead."""
    if in_ci():
        pytest.fail(f"CI=true: this test needs {what}, missing here (install: {how}). ./run test installs it, so "
                    "its set-up failed or was bypassed; in CI a missing need is a failure, not a skip", pytrace=False)
    pytest.skip(f"needs {what}, missing here; install: {how}", allow_module_level=module_level)


def modules(*names: str, extra: str, module_level: bool = False) -> None:
    """Skip (fail under CI) unless every module in ``names`` is importable; ``extra`` is the llmabr
    extra that installs them (e.g. "export")."""
    absent = [name for name in names if importlib.util.find_spec(name) is None]
    if absent:
        missing(f"{', '.join(absent)} (the {extra} extra)", f"pip install -e '.[{extra}]'", module_level=module_level)
