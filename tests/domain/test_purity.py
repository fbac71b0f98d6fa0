"""service/domain imports no I/O and never reads the wall clock: checked on the source."""

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "service" / "domain"
FORBIDDEN_MODULES = {
    "os", "pathlib", "io", "socket", "subprocess", "shutil", "tempfile", "sqlite3", "redis",
    "sqlalchemy", "twilio", "httpx", "requests", "urllib", "dramatiq", "fastapi", "yaml",
    "time", "logging", "structlog", "service.config", "service.cli", "service.settings",
}  # fmt: skip
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open", "monotonic", "perf_counter"}


def test_domain_modules_import_no_io() -> None:
    offenders = []
    for path in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if any(n == m or n.startswith(m + ".") for m in FORBIDDEN_MODULES)
            ]
    assert offenders == []


def test_domain_never_reads_the_wall_clock() -> None:
    offenders = []
    for path in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                is_time_time = (
                    isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "time"
                )
                if name in FORBIDDEN_CALLS or (is_time_time and name == "time"):
                    offenders.append(f"{path.name}:{node.lineno}: {name}()")
    assert offenders == []
