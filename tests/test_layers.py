"""Imports point one way: core → stages → application (DESIGN §2), lazy (in-function) imports included."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a folder may import only folders of a lower rank; stages of one rank never import each other
RANK = {"core": 0, "encoder": 1, "eval": 1, "index": 2, "search": 3, "compression": 4, "effir": 5}


def _folder_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "effir":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in RANK and parts[1] != "effir" else "effir"


def imports(folder: str) -> list[tuple[str, int, str]]:
    """(file, line, imported folder) for every effir import under `folder`, at any depth of the code."""
    out = []
    for path in sorted((ROOT / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "effir"
                                         else [])
            else:
                continue
            for name in names:
                target = _folder_of(name)
                if target and target != folder and not (name == "effir" and isinstance(node, ast.ImportFrom)):
                    out.append((str(path.relative_to(ROOT)), node.lineno, target))
    return out


def test_imports_point_down_only():
    wrong = [f"{file}:{line} imports {target} (rank {RANK[target]}) from {folder} (rank {RANK[folder]})"
             for folder in RANK for file, line, target in imports(folder) if RANK[target] >= RANK[folder]]
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_lazy_and_upward_imports(tmp_path, monkeypatch):
    """The test above can fail: a lazy upward import in a stage is reported."""
    fake = tmp_path / "encoder"
    fake.mkdir()
    (fake / "m.py").write_text("def f():\n    from effir.compression.shadow import load\n    from effir import bench\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [t for _, _, t in imports("encoder")] == ["compression", "effir"]


def test_runtime_variants_are_registered_by_compression():
    from effir.core.models import ModelSpec
    from effir.encoder.model import runtime_variants

    variants = runtime_variants(ModelSpec(name="x", path="x", extra={"shadow": {"head_keep": 0.5}, "quantization": "int8-dynamic"}))
    assert [v.__name__ for v in variants] == ["apply_to_model", "attach_from_folder"]  # quantization, shadow
    assert all(v.__module__.startswith("effir.compression.") for v in variants)
    assert runtime_variants(ModelSpec(name="x", path="x")) == []  # a plain folder loads no variant code
