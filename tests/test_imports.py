"""How the package's modules depend on one another, read from their source: the imports run when a
module loads form no cycle, and the core imports neither Mesa nor anything of the package outside it."""

import ast
import graphlib
from pathlib import Path

import market_abm

PACKAGE = Path(market_abm.__file__).resolve().parent


def module_files():
    """Every module of the package by dotted name (a package by its own name), with its source file."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("market_abm",) + path.relative_to(PACKAGE).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(statements, modules):
    """The modules of the package that these import statements load (a name imported from a package
    counts as its submodule when there is one)."""
    found = set()
    for node in statements:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found |= {submodule} if submodule in modules else {node.module} & modules.keys()
    return found


def load_time_statements(tree):
    """The statements a module runs when it is imported: its body, with the branches of its `if` and
    `try` blocks, but not the bodies of its functions and classes."""
    pending, statements = list(tree.body), []
    while pending:
        node = pending.pop()
        statements.append(node)
        if isinstance(node, (ast.If, ast.Try)):
            pending += node.body + node.orelse + getattr(node, "finalbody", [])
            pending += [line for handler in getattr(node, "handlers", []) for line in handler.body]
    return statements


def test_the_imports_run_at_load_time_form_no_cycle():
    modules = module_files()
    graph = {name: imported(load_time_statements(ast.parse(path.read_text())), modules) - {name}
             for name, path in modules.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_the_core_imports_no_mesa_and_nothing_of_the_package_outside_it():
    modules = module_files()
    for name, path in modules.items():
        if not name.startswith("market_abm.core"):
            continue
        nodes = list(ast.walk(ast.parse(path.read_text())))
        outside = {module for module in imported(nodes, modules) if not module.startswith("market_abm.core")}
        assert not outside, f"{name} imports {sorted(outside)}"
        names = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
        assert not {n for n in names if n.split(".")[0] in ("mesa", "solara")}, f"{name} imports Mesa"
