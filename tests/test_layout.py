"""The shape of the package: imports run one way, TensorFlow stays inside recgen.models, and what is
installed is what is in the tree."""

import ast
import configparser
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

import recgen
from recgen.constants import MODEL_CHOICES
from recgen.models import FAMILIES

PACKAGE = Path(recgen.__file__).resolve().parent
ROOT = PACKAGE.parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str) -> set[str]:
    """The recgen modules `module` imports, at its top or inside a function: `from recgen.a import b` names
    recgen.a.b when that is a module, else recgen.a."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found - {module}


GRAPH = {module: imports(module) for module in MODULES}


def importers_of(prefixes: tuple[str, ...]) -> set[str]:
    """Modules that import any third-party package starting with one of `prefixes`."""
    found = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(name.split(".")[0] in prefixes for name in names):
                found.add(module)
    return found


def test_the_graph_sees_the_package():
    assert len(MODULES) > 40
    assert "recgen.models.hybrid.training" in GRAPH["recgen.models.hybrid.family"]
    assert "recgen.store.lock" in GRAPH["recgen.batch"]


def test_no_import_cycles():
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_cycle_check_can_fail():
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({**GRAPH, "recgen.constants": {"recgen.batch"}}).prepare()


def test_the_families_never_import_the_registry():
    families = [m for m in MODULES if m.startswith(("recgen.models.seed", "recgen.models.hybrid"))]
    assert families and not [m for m in families if "recgen.models.registry" in GRAPH[m]]
    assert tuple(FAMILIES) == MODEL_CHOICES  # the CLI's --model choices, offered without importing Keras


def test_only_the_models_import_keras_or_tensorflow():
    outside = {m for m in importers_of(("keras", "tensorflow")) if not m.startswith("recgen.models")}
    assert not outside, outside


@pytest.mark.parametrize(
    "module",
    [
        "recgen.plugin",
        "recgen.cli",
        "recgen.batch",
        "recgen.models",
        "recgen.evaluation",
        "recgen.engines.ray",
        "recgen.models.hybrid.solves",
        "recgen.scoring",
    ],
)
def test_light_entry_points_do_not_load_tensorflow(module):
    """Datasette's plugin, the command line before a command runs, run-batch until its ingest is done (a refused
    option or a held lock is reported at once), `recgen evaluate`'s reading of a run, and
    what a cluster's workers import for the closed-form steps and scoring without the model stay light:
    TensorFlow is loaded only to train or score with the model."""
    code = f"import sys, {module}; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_setup_cfg_installs_every_package_of_the_tree():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    in_tree = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert listed == in_tree | {"recgen.migrations", "recgen.migrations.versions"}
