"""No import cycles between the modules of sxdiff: every import, at module level or inside a function, goes one way."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, whether it is a package ``__init__``), for every module of sxdiff."""
    modules = {}
    for path in sorted((SRC / "sxdiff").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imported(node: ast.Import | ast.ImportFrom, package: str, modules: dict) -> list[str]:
    """The sxdiff modules an import statement names (a submodule if it is one, else the module it comes from)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            parents = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parents, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    out = []
    for name in names:
        while name and name not in modules:  # `import sxdiff.data._on_disk.x` or an attribute: its module
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the sxdiff modules it imports anywhere in its source (functions and ``TYPE_CHECKING`` included).

    Importing ``sxdiff.a.b`` also runs ``sxdiff/a/__init__.py``; those implicit parent imports are not edges
    (every module would otherwise sit in one cycle with ``sxdiff/__init__.py``).
    """
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[name].update(t for t in _imported(node, package, modules) if t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_holds_the_package_imports():
    graph = import_graph()
    assert "sxdiff.data._on_disk" in graph["sxdiff.data._expression"]  # module level, relative
    assert "sxdiff.data._expression" in graph["sxdiff.data"]  # a package's ``__init__``
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_inside_functions_and_from_packages_are_resolved():
    tree = ast.parse("def f():\n    from .a import x\n    from . import b\n    import sxdiff.c.d\n")
    modules = {"sxdiff.data": None, "sxdiff.data.a": None, "sxdiff.data.b": None, "sxdiff.c": None}
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    resolved = [_imported(node, "sxdiff.data", modules) for node in imports]
    assert resolved == [["sxdiff.data.a"], ["sxdiff.data.b"], ["sxdiff.c"]]


def test_no_import_cycles_between_sxdiff_modules():
    found = cycles(import_graph())
    assert not found, (
        f"Import cycles between sxdiff modules: {found}. Move the shared piece to a module both can import "
        "(one way), rather than importing back inside a function."
    )
