"""The package's shape, kept by tests so it outlives the change that drew it
(docs/ARCHITECTURE.md): the arrows between parts run one way, the protocol core does no
I/O, and no module grows past what one person can read in a sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "o2m_pub"
SHARED = {"errors", "config", "_files", "_faults", "_sqlite"}  # root modules every part may use

# What each part may import from o2m (besides itself). `cli` and the root `demo` wire
# everything together and may import anything.
ALLOWED: dict[str, set[str]] = {
    "protocol": {"errors"},
    "friends": {"protocol"} | SHARED,
    "site": {"friends", "protocol"} | SHARED,
    "host": {"friends", "protocol"} | SHARED,
    "reader": {"friends", "protocol"} | SHARED,
    "desk": {"reader", "site", "friends", "protocol"} | SHARED,
    "errors": set(),
    "config": {"errors"},
    "_files": {"errors"},
    "_faults": {"errors"},
    "_sqlite": {"errors", "_faults"},
}

# The protocol core takes bytes, keys, times and nonces as arguments (PROTOCOL.md): no
# files, sockets, processes, clocks or randomness of its own.
IO_MODULES = {"os", "io", "pathlib", "shutil", "tempfile", "fcntl", "socket", "ssl",
              "select", "selectors", "subprocess", "threading", "multiprocessing", "asyncio",
              "sqlite3", "http", "urllib.request", "requests", "urllib3", "twisted", "time",
              "random", "secrets", "segno", "PIL", "watchdog", "jinja2", "click", "rich"}
IO_CALLS = {"open", "now", "utcnow", "today", "generate", "urandom", "token_bytes"}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def part_of(path: Path) -> str:
    """The part a module belongs to: its subpackage, or its own name at the root."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def o2m_imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every o2m import in `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["o2m_pub", *path.relative_to(PACKAGE).parent.parts]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [module + "." + a.name for a in node.names] if not node.module or \
                module == "o2m_pub" else [module]
            found += [(node.lineno, m) for m in names if m.startswith("o2m_pub")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("o2m_pub")]
    return found


def imported_part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__init__" else None


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way_between_the_parts(path: Path) -> None:
    """A module imports only its own part and the parts its part may use, so that
    `cli -> (site, host, reader, desk) -> friends -> protocol` stays a one-way street."""
    part = part_of(path)
    if part in ("cli", "demo", "__main__", "__init__"):
        return
    allowed = ALLOWED[part] | {part, "__version__"}
    wrong = [f"line {line}: {module}" for line, module in o2m_imports(path)
             if imported_part(module) not in allowed]
    assert wrong == [], f"{part} may import only {sorted(allowed)}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "protocol").glob("*.py")), ids=lambda p: p.name)
def test_the_protocol_core_does_no_io(path: Path) -> None:
    """No module of protocol/ imports a file, network, process, clock or randomness
    library, or calls open(), now() or a key generator: I/O is passed in."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            names = []
        found += [f"line {node.lineno}: import {n}" for n in names
                  if n in IO_MODULES or n.split(".")[0] in IO_MODULES or n == "nacl.utils"]
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in IO_CALLS:
                found.append(f"line {node.lineno}: calls {name}()")
    assert found == []


def test_the_architecture_test_sees_every_part() -> None:
    """Every folder of the package is a part the rules above know of, so a new part
    cannot slip past them."""
    parts = {part_of(p) for p in modules()} - {"cli", "demo", "__main__", "__init__"}
    assert parts <= set(ALLOWED), sorted(parts - set(ALLOWED))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_900_lines(path: Path) -> None:
    """A module one person can read in a sitting (issue: layout)."""
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 900
