"""Shared plumbing for the `devserve check` tests: fixture trees and finding cases.

A `Tree` maps relative paths to contents (keys ending in / are folders, ../
leaves the root). Each finding code has cases that must produce it and near
misses that must not, in the test file of the module that finds it; the
helpers here build and check one case.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devserve.check import CODES, CheckConfig, Report, check

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Link:
    """A symlink to ``target`` (as written)."""

    target: str


@dataclass(frozen=True)
class File:
    """A file with an explicit mode."""

    content: str | bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Sparse:
    """A file of ``size`` zero bytes that takes no disk space (a hole)."""

    size: int


Node = str | bytes | Link | File | Sparse
Tree = dict[str, Node]


def build(root: Path, tree: Tree) -> None:
    """Create ``tree`` below ``root``; keys ending in / are folders, ../ leaves the root."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, node in tree.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            if isinstance(node, File):
                path.chmod(node.mode)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(node, Link):
            path.symlink_to(node.target)
        elif isinstance(node, Sparse):
            with path.open("wb") as file:
                file.truncate(node.size)
        elif isinstance(node, File):
            if isinstance(node.content, bytes):
                path.write_bytes(node.content)
            else:
                path.write_text(node.content)
            path.chmod(node.mode)
        elif isinstance(node, bytes):
            path.write_bytes(node)
        else:
            path.write_text(node)


def page(body: str, head: str = "") -> str:
    """A well-formed UTF-8 page; ``body`` starts on line 9."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>t</title>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


# Not a usable key: the PEM armour is what the check looks for.
PRIVATE_PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"
OPENSSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz\n-----END OPENSSH PRIVATE KEY-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "project_id": "demo",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n",
    }
)
CGI: dict[str, Any] = {"cgi_directories": ("/cgi-bin",)}
SH = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho hi\n"


def run_check(root: Path, **options: Any) -> Report:
    """`check` with no DS504 and scripts run as ourselves, unless ``options`` say otherwise."""
    settings: dict[str, Any] = {"watch_limit": 1_000_000, "runs_as_root": False}
    settings.update(options)
    return check(CheckConfig(directory=root, **settings))


# ------------------------------------------------------------- every code, both ways


@dataclass(frozen=True)
class Case:
    code: str
    tree: Tree
    options: dict[str, Any]
    where: str | None = None  # "path" or "path:line" the finding must point at
    public: bool = False  # build under a folder nobody can reach (for DS606)


def case(
    code: str, tree: Tree, where: str | None = None, public: bool = False, **options: Any
) -> Case:
    return Case(code, tree, options, where, public)


def case_id(item: Case) -> str:
    return f"{item.code}-{zlib.crc32(repr(item).encode()) % 10_000:04d}"


def _build_case(item: Case, tmp_path: Path, public: Path) -> Path:
    root = (public if item.public else tmp_path) / "site"
    build(root, item.tree)
    return root


def assert_reported(item: Case, tmp_path: Path, public: Path) -> None:
    """``item.code`` is found, with its rule's severity, where ``item.where`` says."""
    report = run_check(_build_case(item, tmp_path, public), **item.options)
    found = [f for f in report.findings if f.code == item.code]
    assert found, [f"{f.code} {f.path}: {f.message}" for f in report.findings]
    assert all(f.severity == CODES[item.code].severity for f in found)
    if item.where is not None:
        places = {f.path if f.line is None else f"{f.path}:{f.line}" for f in found}
        assert item.where in places


def assert_not_reported(item: Case, tmp_path: Path, public: Path) -> None:
    """``item.code`` is not found."""
    report = run_check(_build_case(item, tmp_path, public), **item.options)
    assert item.code not in {f.code for f in report.findings}, report.findings
