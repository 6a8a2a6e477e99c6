"""The package's layers: no import cycle between modules, no import from a layer into one above.

Every module of espnet_ros/ is read with ``ast``: imports at any depth (inside functions and
``try`` blocks too), relative imports resolved. A module may import its own layer and the
layers below it; the order is declared once, in ``LAYERS``, lowest first. Modules of one layer
may import each other, but no chain of imports may come back to where it started.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "espnet_ros"

# Lowest first. An entry names a package (its modules and subpackages) or a single module;
# entries in one tuple form one layer.
LAYERS = (
    ("espnet_ros", "espnet_ros.malloc", "espnet_ros.power"),  # "espnet_ros": __init__ alone
    ("espnet_ros.models",),
    ("espnet_ros.data",),
    ("espnet_ros.metrics",),
    ("espnet_ros.inference",),
    ("espnet_ros.training",),
    ("espnet_ros.bench",),
    ("espnet_ros.messages",),
    ("espnet_ros.bag",),
    ("espnet_ros.ros",),
    ("espnet_ros.tools",),
    ("espnet_ros.cli",),
)

# Violations allowed for now; any other fails, and so does a listed one that no longer occurs
# (so the list cannot outlive its entries). Empty: the tree has none.
KNOWN_VIOLATIONS = set()


# ---------------------------------------------------------------------------- the checker
def module_files(root, package):
    """{module name: path} of every .py file of ``package`` under ``root``."""
    modules = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name, path, modules):
    """The modules of ``modules`` that the module ``name`` (at ``path``) imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import mod" imports the module pkg.mod; "from mod import name" the module.
            targets = [base + "." + alias.name if base + "." + alias.name in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root, package):
    modules = module_files(root, package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def layer_of(module, layers):
    """Index of the layer holding ``module`` (its longest matching entry), or None."""
    best, index = "", None
    for i, entries in enumerate(layers):
        for entry in entries:
            # The top package's entry stands for its __init__ alone.
            owns = module == entry or ("." in entry and module.startswith(entry + "."))
            if owns and len(entry) > len(best):
                best, index = entry, i
    return index


def cycles(graph):
    """Each import cycle once, as a list of modules (strongly connected components of >1)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(start):  # Tarjan, iterative: deep import chains must not hit the recursion limit
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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


def violations(graph, layers):
    """("missing", entry, "") for an entry of ``layers`` that names no module,
    ("unlayered", module, ""), ("upward", importer, imported), and ("cycle", "a <-> b <-> ...",
    "") with the modules of each cycle in name order; sorted."""
    found = {("missing", entry, "") for entries in layers for entry in entries
             if entry not in graph}
    for module in graph:
        if layer_of(module, layers) is None:
            found.add(("unlayered", module, ""))
    for module, imports in graph.items():
        here = layer_of(module, layers)
        for target in imports:
            there = layer_of(target, layers)
            if here is not None and there is not None and there > here:
                found.add(("upward", module, target))
    for component in cycles(graph):
        found.add(("cycle", " <-> ".join(component), ""))
    return sorted(found)


def describe(violation):
    kind, a, b = violation
    if kind == "cycle":
        return "import cycle: %s" % a
    if kind == "upward":
        return "%s imports %s, a higher layer" % (a, b)
    if kind == "missing":
        return "%s in LAYERS is not a module or package" % a
    return "%s is in no layer of LAYERS" % a


# ---------------------------------------------------------------------------- the package
def test_the_package_has_no_cycle_and_no_upward_import():
    graph = import_graph(REPO, PACKAGE)
    found = violations(graph, LAYERS)
    new = [describe(v) for v in found if v not in KNOWN_VIOLATIONS]
    assert not new, "layering broken:\n" + "\n".join(new)
    gone = sorted(KNOWN_VIOLATIONS - set(found))
    assert not gone, "fixed, remove from KNOWN_VIOLATIONS: %s" % gone


def test_the_node_entry_point_is_not_imported_by_the_node():
    """node_main imports segment_node, never the other way (no __main__ block importing it)."""
    graph = import_graph(REPO, PACKAGE)
    assert "espnet_ros.ros.segment_node" in graph["espnet_ros.ros.node_main"]
    assert "espnet_ros.ros.node_main" not in graph["espnet_ros.ros.segment_node"]


# ---------------------------------------------------------------------------- the checker itself
def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


FAKE_LAYERS = (("fake", "fake.low"), ("fake.high",))


def test_checker_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    _write(tmp_path, {
        "fake/__init__.py": "",
        "fake/low/__init__.py": "",
        "fake/low/a.py": "from . import b\n",
        "fake/low/b.py": "def f():\n    from .c import g\n    return g\n",
        "fake/low/c.py": "import fake.low.a\n",
        "fake/high/__init__.py": "",
    })
    graph = import_graph(tmp_path, "fake")
    assert graph["fake.low.b"] == {"fake.low.c"}
    assert cycles(graph) == [["fake.low.a", "fake.low.b", "fake.low.c"]]
    assert violations(graph, FAKE_LAYERS) == [
        ("cycle", "fake.low.a <-> fake.low.b <-> fake.low.c", "")]


def test_checker_finds_an_upward_import_written_relative(tmp_path):
    _write(tmp_path, {
        "fake/__init__.py": "",
        "fake/low/__init__.py": "",
        "fake/low/a.py": "try:\n    from ..high.x import thing\nexcept ImportError:\n    pass\n",
        "fake/high/__init__.py": "",
        "fake/low/b.py": "",
        "fake/high/x.py": "from ..low import b\nimport os\n",  # downward and stdlib: fine
    })
    graph = import_graph(tmp_path, "fake")
    assert violations(graph, FAKE_LAYERS) == [("upward", "fake.low.a", "fake.high.x")]
    assert "a higher layer" in describe(("upward", "fake.low.a", "fake.high.x"))


def test_checker_resolves_package_relative_imports_and_flags_unlayered_modules(tmp_path):
    _write(tmp_path, {
        "fake/__init__.py": "",
        "fake/low/__init__.py": "from .a import thing\n",  # in a package: relative to itself
        "fake/low/a.py": "thing = 1\n",
        "fake/high/__init__.py": "",
        "fake/stray.py": "",
    })
    graph = import_graph(tmp_path, "fake")
    assert graph["fake.low"] == {"fake.low.a"}
    assert violations(graph, FAKE_LAYERS + (("fake.gone",),)) == [
        ("missing", "fake.gone", ""), ("unlayered", "fake.stray", "")]


@pytest.mark.parametrize("clean", [True, False])
def test_checker_passes_a_clean_fake_package(tmp_path, clean):
    _write(tmp_path, {
        "fake/__init__.py": "",
        "fake/low/__init__.py": "",
        "fake/low/a.py": "import numpy\n",
        "fake/high/__init__.py": "",
        "fake/high/x.py": "from fake.low.a import numpy\n" if clean else "from fake.high import y\n",
        "fake/high/y.py": "" if clean else "from . import x\n",
    })
    found = violations(import_graph(tmp_path, "fake"), FAKE_LAYERS)
    assert (found == []) is clean
