"""The simulator layer stands alone: no llmabr, openai or ray anywhere in it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import simulator

FORBIDDEN = {"llmabr", "openai", "ray"}
SIMULATOR_DIR = Path(simulator.__file__).parent


def test_no_module_of_the_simulator_imports_a_forbidden_package():
    offenders = []
    for path in SIMULATOR_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}:{node.lineno} imports {name}" for name in names if name.split(".")[0] in FORBIDDEN]
    assert not offenders, "\n".join(offenders)


def test_every_simulator_module_imports_with_openai_ray_and_llmabr_blocked():
    script = f"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {sorted(FORBIDDEN)!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
import simulator
for info in pkgutil.walk_packages(simulator.__path__, 'simulator.'):
    importlib.import_module(info.name)
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr
