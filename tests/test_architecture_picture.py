"""docs/architecture.md's package picture against the code: every arrow drawn is an import the code
has between those packages, and every such import is drawn."""

from __future__ import annotations

import ast
import re

from tests.kedro_project import ROOT

SRC = ROOT / "src" / "aestimo"
DOC = ROOT / "docs" / "architecture.md"

#: each box of the picture: the modules it stands for (dotted, under ``aestimo``)
BOXES = {
    "api": ["__init__"],
    "pipelines": ["pipelines"],
    "registry": ["pipeline_registry", "settings", "hooks", "runner", "datasets"],
    "console": ["console", "own_people", "__main__"],
    "logs": ["logs"],
    "config": ["config"],
    "options": ["options"],
    "scoring": ["scoring"],
    "personalization": ["personalization"],
    "training": ["training"],
    "evaluation": ["evaluation"],
    "models": ["models"],
    "data": ["data"],
    "bundle": ["bundle", "device"],
}


def _box(module: str) -> str | None:
    parts = module.split(".")
    for box, prefixes in BOXES.items():
        if any(parts[: len(p.split("."))] == p.split(".") for p in prefixes):
            return box
    return None


def code_arrows() -> set[tuple[str, str]]:
    """Box → box for every import of an Aestimo module by another box's module (inside functions too)."""
    arrows = set()
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        here = _box(".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and (node.module + ".").startswith("aestimo."):
                targets = [a.name for a in node.names] if node.module == "aestimo" else [node.module.removeprefix("aestimo.")]
            elif isinstance(node, ast.Import):
                targets = [a.name.removeprefix("aestimo.") for a in node.names if a.name.startswith("aestimo.")]
            else:
                continue
            for target in targets:
                there = _box(target)
                if here and there and there != here:
                    arrows.add((here, there))
    return arrows


def drawn_arrows() -> set[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("## Packages and who calls whom", 1)[1].split("```mermaid", 1)[1].split("```", 1)[0]
    return set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", block, re.M))


def test_the_package_picture_draws_exactly_the_imports():
    drawn, code = drawn_arrows(), code_arrows()
    assert not drawn - code, f"drawn but not imported: {sorted(drawn - code)}"
    assert not code - drawn, f"imported but not drawn: {sorted(code - drawn)}"


def test_every_module_is_in_a_box():
    loose = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if _box(".".join(p.relative_to(SRC).with_suffix("").parts)) is None
             and p.relative_to(SRC).parts != ("__init__.py",)]
    assert not loose, f"modules in no box of the picture: {loose}"


def _imports(path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_methods_never_import_the_machinery_that_runs_them():
    bad = {str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.startswith("aestimo.personalization.running"))
           for p in (SRC / "personalization" / "methods").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_no_pipeline_imports_another_pipelines_modules():
    for stage in (SRC / "pipelines").iterdir():
        if not stage.is_dir() or stage.name.startswith("__"):
            continue
        for path in stage.rglob("*.py"):
            others = sorted(m for m in _imports(path) if m.startswith("aestimo.pipelines.")
                            and m.split(".")[2] not in (stage.name, "sources"))
            assert not others, f"{path.relative_to(SRC)} imports {others}"
