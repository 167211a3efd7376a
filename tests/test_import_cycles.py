"""No import circle hidden by an import inside a function (issue 20).

A medlib module may import another inside a function (to keep a heavy dependency off the import
path), but not one that imports it back: that is a circle the function-level import only hides.
"""

import ast
from pathlib import Path

import medlib

ROOT = Path(medlib.__file__).parent


def _sources(root: Path) -> dict[str, tuple[str, bool]]:
    """module name -> (source, is a package)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path.read_text(), package)
    return out


def hidden_circles(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """``a -> b`` for every import of ``b`` inside a function of ``a`` where ``b`` imports ``a`` back."""
    def targets(node, here: str) -> list[str]:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = here.split(".") if sources[here][1] else here.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base for a in node.names]
        return [n for n in names if n in sources]

    graph, inner = {}, {}
    for name, (text, _) in sources.items():
        tree = ast.parse(text)
        top = {id(n) for n in tree.body}
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        inner[name] = {t for n in imports if id(n) not in top for t in targets(n, name)}
        graph[name] = {t for n in imports for t in targets(n, name)}

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            here = stack.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                stack.extend(graph[here])
        return False

    return sorted(f"{a} -> {b}" for a in sources for b in inner[a] if b != a and reaches(b, a))


def test_no_import_inside_a_function_hides_a_circle():
    assert hidden_circles(_sources(ROOT)) == []


def test_a_planted_circle_is_found_and_a_lazy_leaf_import_is_not():
    planted = {
        "pkg": ("", True),
        "pkg.a": ("from pkg.b import g\n\ndef f():\n    from pkg.c import h\n    return g, h\n", False),
        "pkg.b": ("def g():\n    from pkg import a\n    return a\n", False),
        "pkg.c": ("import math\n", False),
    }
    assert hidden_circles(planted) == ["pkg.b -> pkg.a"]
