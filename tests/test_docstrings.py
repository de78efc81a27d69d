"""Docstrings name only what exists: every dotted `synth...` name a docstring or comment of the
library, the service or the client points at resolves (a module, or an attribute of one), every
repository file it names (docs/..., bench/..., deploy/..., examples/...) is there, and nothing
points at the design notes outside the repository (users do not have them). Public functions and
classes of the library say what they are for."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from tests.helpers import REPO

ROOTS = (REPO / "synth", REPO / "server" / "synth_server", REPO / "client" / "synth_client")
DOTTED = re.compile(r"(?<![\w./-])((?:synth|synth_server|synth_client)(?:\.[A-Za-z_]\w*)+)(?![\w:])")
# names that are not Python's: the gRPC package (proto/synth/v1) and host names in examples
NOT_PYTHON = ("synth.v1", "synth.internal")
FILES = re.compile(r"(?<![\w./-])((?:docs|bench|deploy|examples|proto|tests)/[\w./-]*\w)")


def _sources() -> list[Path]:
    return sorted(
        p
        for root in ROOTS
        for p in root.rglob("*.py")
        if "_pb2" not in p.name and "__pycache__" not in p.parts
    )


def _texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment of a module."""
    source = path.read_text(encoding="utf-8")
    out: list[tuple[int, str]] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                out.append((getattr(node, "lineno", 1), doc))
    for n, line in enumerate(source.splitlines(), start=1):
        if "#" in line:
            out.append((n, line[line.index("#") :]))
    return out


def _resolves(name: str) -> bool:
    parts = name.rstrip(".").split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_docstrings_name_only_what_exists() -> None:
    bad = []
    for path in _sources():
        rel = path.relative_to(REPO)
        for line, text in _texts(path):
            for name in DOTTED.findall(text):
                if not name.startswith(NOT_PYTHON) and not _resolves(name):
                    bad.append(f"{rel}:{line}: {name}")
            for ref in FILES.findall(text):
                ref = ref.rstrip(".")
                if not any((REPO / ref).exists() or list(REPO.glob(ref)) for _ in [0]):
                    bad.append(f"{rel}:{line}: {ref}")
            if "DESIGN.md" in text:
                bad.append(f"{rel}:{line}: DESIGN.md (outside the repository)")
    assert not bad, "references to what does not exist:\n" + "\n".join(bad)


def _public(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    return [
        node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and not node.name.startswith("_")
    ]


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: p.name)
def test_public_functions_and_classes_are_documented(root: Path) -> None:
    bare = []
    for path in sorted(root.rglob("*.py")):
        if "_pb2" in path.name or "__pycache__" in path.parts or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _public(tree):
            if ast.get_docstring(node) is None and not _is_trivial(node):
                bare.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.name}")
    assert not bare, "public, without a docstring:\n" + "\n".join(bare)


def _is_trivial(node: ast.AST) -> bool:
    """An exception class with no body but `pass` or its error code: the name says it."""
    if not isinstance(node, ast.ClassDef):
        return False
    return all(
        isinstance(stmt, (ast.Pass, ast.Assign, ast.AnnAssign, ast.Expr)) for stmt in node.body
    ) and any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception")) for b in node.bases)


def test_the_docs_name_only_tests_that_exist() -> None:
    """A page that says which test reproduces something names a test file (and test) that exists."""
    ref = re.compile(r"tests/[\w/]+\.py(?:::(\w+))?")
    bad = []
    for page in [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]:
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            for m in ref.finditer(line):
                path = REPO / m.group(0).split("::")[0]
                if not path.is_file() or (m.group(1) and f"def {m.group(1)}(" not in path.read_text()):
                    bad.append(f"{page.relative_to(REPO)}:{n}: {m.group(0)}")
    assert not bad, "tests named that do not exist:\n" + "\n".join(bad)
