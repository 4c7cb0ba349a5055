"""The packages import one way: down the request path, and never into another module's private names.

Read from the source with ``ast`` (nothing is imported), so a new import that breaks the layering
fails here, in ``make lint``, before anyone builds on it. The allowed edges are written out below:
adding a package to ``gateway/`` means deciding here what it may import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOWER = ("routes", "retrieval", "policies")  # the layers under the gateway
SOURCES = ("gateway", *LOWER)

# Modules at the top of gateway/ that everything may use: errors, settings, the wire protocol, metrics.
FOUNDATION = frozenset({"errors", "protocol", "settings", "edge_settings", "limits", "metrics", "model_check",
                        "tables", "api_keys", "client_keys"})
# What each unit of gateway/ (a subpackage, or a top-level module) may import besides itself and FOUNDATION.
# The request path runs api -> pipeline -> upstream / accounting; cli sits on top of everything, and
# nothing but app imports api.
ALLOWED: dict[str, frozenset[str]] = {
    **{name: frozenset() for name in FOUNDATION},
    "dashboard": frozenset(),
    "upstream": frozenset(),
    "accounting": frozenset(),
    "economics": frozenset({"accounting"}),
    "edge": frozenset(),
    "pipeline": frozenset({"upstream", "accounting"}),
    "capture": frozenset({"accounting"}),
    "response_cache": frozenset({"upstream", "accounting"}),
    "dataset": frozenset({"capture", "accounting", "evaluation"}),
    "finetune": frozenset(),
    "demo_upstream": frozenset({"accounting"}),
    "keys": frozenset({"accounting"}),
    "state": frozenset({"pipeline", "upstream", "accounting", "capture", "keys", "response_cache"}),
    "api": frozenset({"pipeline", "upstream", "accounting", "capture", "economics", "dashboard", "state", "keys",
                      "response_cache"}),
    "app": frozenset({"api", "pipeline", "upstream", "accounting", "capture", "economics", "dashboard", "state",
                      "edge", "keys", "response_cache"}),
    "evaluation": frozenset({"app", "demo_upstream", "edge", "pipeline", "economics"}),
    "cli": frozenset({"app", "api", "pipeline", "upstream", "accounting", "capture", "dataset", "finetune",
                      "economics", "dashboard", "state", "edge", "demo_upstream", "evaluation"}),
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    path: Path
    line: int
    module: str  # the imported module, dotted and absolute
    names: tuple[str, ...]  # what a ``from`` import takes from it; () for ``import module``


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(top: str) -> Iterator[Import]:
    for path in sorted((ROOT / top).rglob("*.py")):
        source = _module_of(path)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(source, path, node.lineno, alias.name, ())
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, node.module] if node.module else base)
                yield Import(source, path, node.lineno, module, tuple(alias.name for alias in node.names))


def _where(found: Import) -> str:
    return f"{found.path.relative_to(ROOT)}:{found.line}: {found.source} imports {found.module}"


def _unit(module: str) -> str:
    """``gateway.pipeline.plan`` -> ``pipeline``; ``gateway.app`` -> ``app``."""
    return module.split(".")[1] if module.count(".") else ""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_lower_layers_never_import_the_gateway() -> None:
    wrong = [_where(i) for top in LOWER for i in _imports(top) if i.module.split(".")[0] == "gateway"]
    assert not wrong, "\n".join(wrong)


def test_gateway_packages_import_down_the_request_path() -> None:
    units = {_unit(_module_of(path)) for path in (ROOT / "gateway").glob("*") if path.suffix == ".py" or
             (path.is_dir() and (path / "__init__.py").exists())} - {""}
    assert units == set(ALLOWED), f"decide what a new unit may import: {sorted(units ^ set(ALLOWED))}"
    wrong = []
    for found in _imports("gateway"):
        if found.module.split(".")[0] != "gateway":
            continue
        targets = {_unit(found.module)} if found.module != "gateway" else {*found.names}
        here = _unit(found.source)
        for target in targets - {here} - FOUNDATION:
            if target not in ALLOWED[here]:
                wrong.append(f"{_where(found)} ({here} -> {target} is not an allowed edge)")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("top", [*SOURCES, "bench"])
def test_no_module_imports_another_modules_private_names(top: str) -> None:
    wrong = []
    for found in _imports(top):
        package = found.module.split(".")[0]
        if package not in SOURCES:
            continue
        if any(_private(part) for part in found.module.split(".")) and package != found.source.split(".")[0]:
            wrong.append(f"{_where(found)} (a private module of another package)")
        taken = [name for name in found.names if _private(name)]
        if taken and found.module != found.source:
            wrong.append(f"{_where(found)}: {', '.join(taken)}")
    assert not wrong, "\n".join(wrong)
