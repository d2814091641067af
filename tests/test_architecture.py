"""The shape of the code: the import contracts of pyproject.toml hold (layers, no cycle, a client
without Django), the cycle contract really catches a cycle, and no module outgrows its room."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
MAX_MODULE_LINES = 400


def lint_imports(*arguments: str, cwd: Path = ROOT, pythonpath: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", *arguments],
        cwd=cwd,
        env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_app_keeps_every_import_contract():
    checked = lint_imports()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 kept, 0 broken" in checked.stdout


def test_the_cycle_contract_catches_a_cycle_even_through_a_deferred_import(tmp_path):
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("def late():\n    from cyclic import a\n\n    return a\n")
    config = tmp_path / ".importlinter"
    config.write_text(
        "[importlinter]\nroot_package = cyclic\n\n"
        "[importlinter:contract:acyclic]\nname = No cycle\ntype = acyclic_siblings\nancestors = cyclic\n"
    )
    checked = lint_imports("--config", str(config), cwd=tmp_path, pythonpath=tmp_path)
    assert checked.returncode == 1
    assert "No cycle BROKEN" in checked.stdout


def test_no_module_of_the_app_is_over_400_lines():
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in (ROOT / "secrets_app").rglob("*.py")
        if "migrations" not in path.parts
    }
    assert {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
