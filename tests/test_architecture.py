"""docs/architecture.md and docs/cli.md are true: every module of the packages is in the module
map and every module the map names exists, the tree names the stage folders there are, every stage
imports only the stages below it (no import runs back up, no circle), and the command-line
reference is what the parsers print."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

DOC = (REPO / "docs" / "architecture.md").read_text()
# the stage layers of the doc, lowest first; a module may import its own layer and those below
LAYERS = [
    {"errors", "domain", "words", "audio", "ids", "seeding", "options", "version", "allocator"},
    {"dataset"},
    {"dialogs", "engines", "asr"},
    {"samples", "quality"},
    {"produce"},
    {"voices", "workflows", "corpora", "export", "remote"},
    {"api", "presets", "training", "testing", "__init__"},
    {"cli"},
]


def modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "/v1/" not in str(p) and "build" not in p.parts)


def mapped() -> set[str]:
    """The modules the map's first column names, as paths without '.py': a path
    (`synth/produce/casting.py`) and the bare file names after it in the cell (`render.py`), which
    continue that path's folder."""
    table = DOC.split("## Module map", 1)[1].split("## Where to add things", 1)[0]
    out: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        folder = ""
        for token in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if "/" in token:
                folder = token.rsplit("/", 1)[0]
            out.add(f"{folder}/{token.rsplit('/', 1)[-1]}".removesuffix(".py"))
    return out


def _defines(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign)) for n in tree.body)


def test_every_module_is_on_the_map_and_every_mapped_module_exists():
    names = mapped()
    for path in modules(REPO / "synth") + modules(REPO / "server") + modules(REPO / "client"):
        rel = path.relative_to(REPO).with_suffix("").as_posix()
        folder = rel.rsplit("/", 1)[0]
        if path.name == "__main__.py" or (path.name == "__init__.py" and not _defines(path)):
            assert folder in names or any(n.startswith(folder + "/") for n in names), folder
            continue
        assert rel in names or (path.name == "__init__.py" and folder in names), f"{rel} is not on the map"
    for name in names:
        assert (REPO / name).is_dir() or (REPO / f"{name}.py").exists(), (
            f"the map names {name}, which is gone"
        )


def test_the_tree_names_every_stage_folder():
    tree = DOC.split("## The tree", 1)[1].split("## The data flow", 1)[0]
    folders = {p.name for p in (REPO / "synth").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    named = set(re.findall(r"^\s{2}(\w+)/", tree, re.M))
    assert named == folders


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(stage: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if stage in names)


def test_every_stage_imports_only_downward():
    for path in modules(REPO / "synth"):
        rel = path.relative_to(REPO).with_suffix("")
        mod = ".".join(rel.parts)
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        here = _stage(mod.removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("synth.") and target != "synth":
                continue
            there = _stage(target)
            if there == "__init__" and node.level == 0 and here == "cli":
                continue
            assert _layer(there) <= _layer(here), f"{rel}: imports {target} ({there}) from {here}"


def test_docs_cli_md_is_what_the_parsers_print():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTH_")}
    made = subprocess.run(
        [sys.executable, "-m", "synth.cli.reference"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=True,
    )
    assert made.stdout == (REPO / "docs" / "cli.md").read_text(), (
        "docs/cli.md is stale: python -m synth.cli.reference > docs/cli.md"
    )


def _error_names() -> set[str]:
    tree = ast.parse((REPO / "synth" / "errors.py").read_text())
    return {n.name for n in tree.body if isinstance(n, ast.ClassDef)}


def test_errors_are_imported_from_synth_errors_only():
    """An error class is imported from synth.errors (where every one is defined), never through a
    module that happens to import it, so that moving code never breaks an `except`."""
    errors = _error_names()
    roots = [REPO / "synth", REPO / "server", REPO / "bench", REPO / "tests"]
    bad = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "/v1/" in str(path) or path.name == "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or node.module is None:
                    continue
                source = node.module if node.level == 0 else "." * node.level + node.module
                if source.split(".")[-1] == "errors" or source.startswith("synth_client"):
                    continue
                names = sorted(a.name for a in node.names if a.name in errors)
                if names:
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {', '.join(names)} from {source}")
    assert not bad, "errors imported other than from synth.errors:\n" + "\n".join(bad)
