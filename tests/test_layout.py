"""The package layout's one rule (DESIGN.md): models, train and eval import the mmtok core; the core
imports none of them at module level (the registry's lazy lookups are the one place naming models)."""

import ast
from pathlib import Path

CORE = Path(__file__).parents[1] / "mmtok"
OUTSIDE = ("mmtok.models", "mmtok.train", "mmtok.eval")


def module_level_imports(path: Path) -> list[str]:
    names = []
    for node in ast.parse(path.read_text()).body:  # top-level statements only: lazy imports are allowed
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_the_core_imports_no_model_training_or_eval_module_at_load_time():
    offenders = {
        str(path.relative_to(CORE)): name
        for path in CORE.rglob("*.py")
        for name in module_level_imports(path)
        if name.startswith(OUTSIDE)
    }
    assert offenders == {}


def test_eval_is_laid_out_by_job():
    eval_dir = CORE.parent / "eval"
    loose = sorted(p.name for p in eval_dir.glob("*.py"))
    assert loose == ["__init__.py", "aggregate.py", "harness.py", "systems.py"]
    for folder in ("metrics", "codecs", "suites", "report", "probes"):
        assert (eval_dir / folder / "__init__.py").is_file(), folder
    # Every module the modality table names exists where it says.
    from mmtok.modalities import MODALITIES

    for entry in MODALITIES.values():
        assert entry.suite_class().modality == entry.name
