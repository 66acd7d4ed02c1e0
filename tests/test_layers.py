"""The package's layers, read from the code: every import runs downward.

    runtime < data < modeling < scoring < inference < training < commands

A module may import from its own layer and the layers below it, never from a layer above; no
module imports a command (`python -m bert_pos.<command>`). `python -m tests.test_layers`
prints every module by layer with the bert_pos modules it imports.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bert_pos"
LAYERS = ["runtime", "data", "modeling", "scoring", "inference", "training", "commands"]
COMMANDS = {"train", "evaluate", "predict", "compare", "report", "bench"}
MAX_MODULE_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """bert_pos.<layer>.<module> for the layer packages; the top-level modules (the commands,
    the Hydra schema in config.py, the package itself) are the commands layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "commands"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every bert_pos module `path` imports, lazy imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bert_pos"):
            for alias in node.names:  # `from bert_pos.training import loop` imports a module
                child = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / (child.replace(".", "/") + ".py")).exists()
                found.append((node.lineno, child if is_module else node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("bert_pos")]
    return found


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def upward_imports() -> list[str]:
    """Every import against the layer order, and every import of a command, as text."""
    problems = []
    for module, path in modules().items():
        own = LAYERS.index(layer_of(module))
        for line, imported in imports_of(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {imported}"
            if LAYERS.index(layer_of(imported)) > own:
                problems.append(f"{where} (layer {layer_of(imported)} above {layer_of(module)})")
            elif imported.split(".")[-1] in COMMANDS and imported.count(".") == 1:
                problems.append(f"{where} (a command)")
    return problems


def test_every_import_runs_downward():
    assert upward_imports() == []


def test_layer_order_is_checked():
    """The check itself can fail: a data module importing the training loop is reported."""
    assert LAYERS.index(layer_of("bert_pos.training.loop")) > LAYERS.index(
        layer_of("bert_pos.data.sources")
    )
    assert layer_of("bert_pos.train") == "commands"
    assert layer_of("bert_pos.runtime") == "runtime"


@pytest.mark.parametrize("module", sorted(modules()))
def test_module_is_small_enough_to_read(module):
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines"


MAX_FUNCTION_LINES = 62  # a function reads on one screen: "~60", docstring included


def test_no_function_is_longer_than_a_screen():
    long = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def print_layers() -> None:
    by_layer: dict[str, list[str]] = {layer: [] for layer in LAYERS}
    for module, path in modules().items():
        imported = sorted({name for _, name in imports_of(path)} - {module})
        by_layer[layer_of(module)].append(f"  {module}: {', '.join(imported) or '-'}")
    for layer in LAYERS:
        print(f"{layer}:\n" + "\n".join(by_layer[layer]))
    problems = upward_imports()
    print("\n".join(problems) if problems else "no import runs upward")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    print_layers()
