"""What a path reaches on disk (devserve._files): locate, the policies, and the file table.

The staleness tests serve real files through `devserve serve`'s server (the event
loop and a handler thread both use the table) and change them in the ways a
stat cannot see: an ``mmap`` write, and a same-size edit with the mtime set back
on a filesystem whose timestamps have one-second resolution.
"""

from __future__ import annotations

import mmap
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserve._files import (
    RACY_SECONDS,
    FileTable,
    Policy,
    identity,
    locate,
    refusal,
    settled,
)
from devserve.config import ServeConfig
from tests.support import both_paths, read_to_end


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "dir").mkdir(parents=True)
    (site / "dir" / "index.html").write_text("index")
    (site / "listed").mkdir()
    (site / "listed" / "a.txt").write_text("a")
    (site / "small.txt").write_text("small")
    (site / ".env").write_text("SECRET=1")
    (site / "pub").symlink_to(".env")
    (tmp_path / "outside.txt").write_text("outside")
    (site / "out").symlink_to(tmp_path / "outside.txt")
    (site / "big.bin").write_bytes(os.urandom(300 * 1024))
    os.mkfifo(site / "pipe")
    return site


def policy(root: Path, *, list_directories: bool = True, spa_fallback: str | None = None) -> Policy:
    """`devserve serve`'s default policy for ``root`` (hidden files refused)."""
    return Policy(
        str(root), show_hidden=False, list_directories=list_directories, spa_fallback=spa_fallback
    )


# --------------------------------------------------------------------------- locate


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("/small.txt", "file"),
        ("/dir", "redirect"),
        ("/dir/", "index"),
        ("/listed/", "listing"),
        ("/listed/a.txt/", "missing"),  # a file asked for as a folder
        ("/nope.txt", "missing"),
        ("/.env", "missing"),  # hidden
        ("/pub", "missing"),  # a link to a hidden file is hidden too
        ("/out", "missing"),  # a link out of the folder
        ("/pipe", "missing"),  # never opened for reading
        ("/big.bin", "file"),
    ],
)
def test_locate_answers_as_the_documented_handler_orders_it(
    root: Path, target: str, kind: str
) -> None:
    found = locate(str(root) + target, target, None, policy(root), FileTable())
    if found.fd is not None:
        os.close(found.fd)
    assert found.kind == kind


def test_small_files_come_with_their_bytes_large_ones_with_a_descriptor(root: Path) -> None:
    table = FileTable(max_file=256 * 1024)
    small = locate(str(root / "small.txt"), "/small.txt", None, policy(root), table)
    assert (small.data, small.fd) == (b"small", None)
    big = locate(str(root / "big.bin"), "/big.bin", None, policy(root), table)
    assert big.data is None and big.fd is not None
    os.close(big.fd)


def test_the_spa_fallback_takes_app_routes_only(root: Path) -> None:
    spa = policy(root, spa_fallback="small.txt")
    table = FileTable()
    route = locate(str(root / "settings"), "/settings", None, spa, table)
    asset = locate(str(root / "app.js"), "/app.js", "*/*", spa, table)
    navigation = locate(str(root / "x.html"), "/x.html", "text/html", spa, table)
    assert (route.kind, route.data) == ("spa", b"small")
    assert asset.kind == "missing"
    assert navigation.kind == "spa"


def test_without_listings_a_folder_without_index_is_missing(root: Path) -> None:
    found = locate(
        str(root / "listed") + "/", "/listed/", None, policy(root, list_directories=False)
    )
    assert found.kind == "missing"
    assert refusal(str(root / "listed") + "/", policy(root, list_directories=False)) == "no-listing"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("nope.txt", None),
        (".env", "hidden"),
        ("pub", "hidden"),
        ("out", "symlink"),
        ("pipe", "not a file"),
        ("small.txt/", "not a folder"),
    ],
)
def test_why_a_path_is_refused(root: Path, name: str, why: str | None) -> None:
    assert refusal(str(root / name) + ("/" if name.endswith("/") else ""), policy(root)) == why


def test_a_listing_lists_the_folder_that_was_checked(root: Path, tmp_path: Path) -> None:
    """Swapping the folder for a link after the check does not list the link's target."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "private.txt").write_text("x")
    table = FileTable()
    found = locate(str(root / "listed") + "/", "/listed/", None, policy(root), table)
    assert found.kind == "listing" and found.fd is not None
    (root / "listed").rename(root / "was-listed")
    (root / "listed").symlink_to(tmp_path / "elsewhere")
    from devserve._files import list_entries

    assert found.st is not None
    names = [e.name for e in list_entries(found.path, found.fd, found.st, policy(root), table)]
    os.close(found.fd)
    assert names == ["a.txt"]


# --------------------------------------------------------------------------- the table


def test_a_settled_copy_is_used_and_a_racy_one_is_read_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = FileTable()
    path = str(root / "small.txt")
    site = policy(root)
    assert locate(path, "/small.txt", None, site, table).data == b"small"
    # Read within RACY_SECONDS of the file's last change: not trusted again.
    assert table.file(path, site) is None
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)
    assert locate(path, "/small.txt", None, site, table).data == b"small"
    remembered = table.file(path, site)  # one stat, no open
    assert remembered is not None and remembered.data == b"small"
    (root / "small.txt").write_text("longer now")
    assert table.file(path, site) is None  # another size: a miss


def test_settled_means_read_well_after_the_last_change(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    st = os.stat(path)
    assert not settled(st, time.time())
    assert settled(st, time.time() + RACY_SECONDS + 0.1)
    old = time.time() - 100
    os.utime(path, (old, old))
    assert not settled(os.stat(path), time.time())  # the ctime moved on


def test_the_table_is_bounded_in_bytes(tmp_path: Path) -> None:
    table = FileTable(max_bytes=64 * 1024, max_file=32 * 1024)
    site = Policy(str(tmp_path))
    for i in range(40):
        (tmp_path / f"f{i}").write_bytes(b"x" * 8000)
        locate(str(tmp_path / f"f{i}"), f"/f{i}", None, site, table)
    assert table.size <= table.max_bytes
    assert table.get((str(tmp_path / "f39"), site)) is not None
    assert table.get((str(tmp_path / "f0"), site)) is None  # the oldest went first


def test_identity_covers_what_a_rewrite_or_replacement_changes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one")
    before = identity(os.stat(path))
    (tmp_path / "g").write_text("two")
    (tmp_path / "g").replace(path)
    assert identity(os.stat(path)) != before


# --------------------------------------------------------------------------- staleness


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = read_to_end(sock)
    return data.partition(b"\r\n\r\n")[2]


def test_an_mmap_write_is_never_served_stale(root: Path) -> None:
    """A write through a mapping that is already dirty changes no timestamp at all."""
    path = root / "mapped.txt"
    path.write_bytes(b"A" * 4096)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 4096) as mapped:
        mapped[0:4] = b"BBBB"  # the first write to the page: the mtime changes once
        with both_paths(ServeConfig(directory=root, quiet=True)) as (loop_port, thread_port, _):
            for port in (loop_port, thread_port):
                before = os.stat(path)
                body = _get(port, "/mapped.txt")  # read and remembered
                letter = bytes([body[0]])
                assert body == letter * 4 + b"A" * 4092
                mapped[0:4] = (b"C" if letter == b"B" else b"B") * 4  # no timestamp moves
                assert identity(os.stat(path)) == identity(before)
                assert _get(port, "/mapped.txt")[:4] == mapped[0:4]


@pytest.fixture(scope="module")
def coarse_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder on ext4 with 128-byte inodes: timestamps of one-second resolution.

    (HFS+, FAT and such ext4 file systems are where a same-size edit within one
    timestamp tick leaves a file's stat exactly as it was.)
    """
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("needs root and mkfs.ext4 to loop-mount a test file system (CI has both)")
    work = tmp_path_factory.mktemp("coarse")
    image, mount = work / "fs.img", work / "mnt"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(image)], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True, capture_output=True)
    try:
        mount.chmod(0o755)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False, capture_output=True)


def test_a_same_size_edit_with_the_mtime_set_back_is_never_served_stale(
    coarse_folder: Path,
) -> None:
    page = coarse_folder / "page.txt"
    config = ServeConfig(directory=coarse_folder, quiet=True)
    with both_paths(config) as (loop_port, thread_port, _):
        for n, port in enumerate((loop_port, thread_port)):
            for _attempt in range(20):
                page.write_bytes(b"old-%d" % n)
                time.sleep(0.001)
                before = os.stat(page)
                assert _get(port, "/page.txt") == b"old-%d" % n
                page.write_bytes(b"new-%d" % n)  # same size, within the same second
                os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))
                if identity(os.stat(page)) == identity(before):
                    break  # the edit left the stat exactly as it was
                time.sleep(1.1 - time.time() % 1)  # next second: try again right after a tick
            assert identity(os.stat(page)) == identity(before), "no same-second edit in 20 tries"
            assert _get(port, "/page.txt") == b"new-%d" % n
