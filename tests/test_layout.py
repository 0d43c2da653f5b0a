"""The architecture holds: dependencies point one way (``segments`` <- ``renderer`` <-
``cli``), the content-side libraries stay out of ``segments``, no module-level import
cycles, and modules and functions stay a readable size."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("segments", "renderer")
MAX_MODULE_LINES = 600  # a module has fewer lines than this
MAX_FUNCTION_LINES = 60  # a function longer than this says why, in a `# long: ...` comment
LONG_REASON = re.compile(r"#.*\blong\b\W*\w")
# What segments/ never imports, anywhere in a file: ruff's banned-api lets all of
# segments/ import every banned library (TID251 is one code), so this is checked here.
CONTENT_SIDE = ("renderer", "cli", "jinja2", "mjml", "css_inline", "premailer", "typer", "rich")
# Libraries with one home module each, checked here for the same reason.
HOMES = {
    "mjml": "renderer/compile/mjml.py",
    "css_inline": "renderer/compile/inline.py",
    "premailer": "renderer/compile/inline.py",
    "typer": ("cli.py", "cli_i18n.py"),
    "rich": ("cli.py", "cli_output.py"),
    "sqlalchemy": "segments/profiles/sqlread.py",
    "dask": "renderer/build/dask_executor.py",
    "distributed": "renderer/build/dask_executor.py",
    "babel": ("renderer/i18n/locale.py", "renderer/i18n/tools.py"),
}


def source_files() -> list[Path]:
    files = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    return [*files, ROOT / "cli.py", ROOT / "cli_output.py", ROOT / "cli_i18n.py"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_modules(path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The modules of ``known`` an import statement imports (relative ones resolved):
    ``from a import b`` is the submodule ``a.b`` if there is one, else the package ``a``;
    any other name is kept as written, so ``renderer`` stays ``renderer``."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    submodules = {f"{base}.{alias.name}" for alias in node.names} & known
    return submodules or {base}


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not inside a function or class,
    not under ``if TYPE_CHECKING:``."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if test not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                pending += node.body
            pending += node.orelse
        elif isinstance(node, ast.Try):
            pending += [*node.body, *node.orelse, *node.finalbody]
            pending += [stmt for handler in node.handlers for stmt in handler.body]
        elif isinstance(node, ast.With):
            pending += node.body


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of segments/, renderer/ and cli.py it imports at module level."""
    modules = {module_name(p): p for p in source_files()}
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imports = module_level_imports(parse(path))
        found = set().union(*(imported_modules(path, node, known) for node in imports))
        graph[name] = (found & known) - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle a depth-first search meets, as the path that closes it."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "active" while on the DFS path, then "done"
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "active"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "active":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_importing_segments_loads_no_content_side_library() -> None:
    code = "import segments, sys; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "segments" in loaded
    banned = ("jinja2", "mjml", "css_inline", "premailer", "renderer", "cli", "typer", "rich")
    assert sorted(m for m in loaded if m.split(".")[0] in banned) == []


def every_import(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every import in the file, inside functions too."""
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in imported_modules(path, node, set()):
                yield node.lineno, name.split(".")[0]


def test_segments_imports_nothing_of_the_content_side() -> None:
    """Not even inside a function or for type checking: the dependency points one way."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {package}"
        for path in sorted((ROOT / "segments").rglob("*.py"))
        for line, package in every_import(path)
        if package in CONTENT_SIDE
    ]
    assert not offenders, "segments/ imports the content side:\n" + "\n".join(offenders)


def test_one_module_libraries_stay_in_their_module() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {package} (only in {HOMES[package]})"
        for path in source_files()
        for line, package in every_import(path)
        if package in HOMES and str(path.relative_to(ROOT)) not in _homes(package)
    ]
    assert not offenders, "\n".join(offenders)


def _homes(package: str) -> tuple[str, ...]:
    home = HOMES[package]
    return (home,) if isinstance(home, str) else home


def test_find_cycles_reports_the_closing_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules() -> None:
    graph = import_graph()
    assert "segments.errors" in graph["renderer.runtime"] and graph["segments.errors"] == set()
    cycles = find_cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_modules_stay_under_the_size_limit() -> None:
    too_long = []
    for path in source_files():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count >= MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {count} lines")
    assert not too_long, f"modules of {MAX_MODULE_LINES} lines or more:\n" + "\n".join(too_long)


def long_functions_without_a_reason(source: str) -> Iterator[tuple[int, str, int]]:
    """(line, name, length) of each function over the limit with no comment saying
    ``long`` and why, on the line above it (or its decorators) or in its first lines."""
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        if length <= MAX_FUNCTION_LINES:
            continue
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        body = node.body
        if len(body) > 1 and isinstance(body[0], ast.Expr):
            body = body[1:]  # the docstring: the reason may follow it
        window = lines[max(start - 2, 0) : body[0].lineno + 2]
        if not any(LONG_REASON.search(line) for line in window):
            yield node.lineno, node.name, length


def test_a_long_function_passes_with_a_reason_above_or_in_its_first_lines() -> None:
    body = "".join(f"    x = {i}\n" for i in range(MAX_FUNCTION_LINES))
    source = (
        f"# long: one table of cases\ndef above():\n{body}\n"
        f'def inside():\n    """Doc."""\n    # long: a state machine\n{body}\n'
        f"def short():\n    x = 1\n\n"
        f"@decorated\ndef bare():\n    # the word alone, no reason: long\n{body}"
    )
    assert list(long_functions_without_a_reason(source)) == [
        (12 + 2 * len(body.splitlines()), "bare", 62)
    ]


def test_long_functions_say_why() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name} ({length} lines)"
        for path in source_files()
        for line, name, length in long_functions_without_a_reason(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        f"functions over {MAX_FUNCTION_LINES} lines without `# long: why`:\n" + "\n".join(offenders)
    )
