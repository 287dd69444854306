"""The change watcher on real temporary folders: batches, ignores, stopping, the watch limit."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserve.reload.watcher import (
    Change,
    ChangeWatcher,
    IgnoreRules,
    WatchError,
    describe,
    is_css_only,
)
from tests.support import devserve_env

ROOT = Path(__file__).resolve().parent.parent
# Longer than the watcher's quiet step, so a second batch would have arrived.
QUIET = 0.4


class Batches:
    """What a watcher reported, for tests to wait on."""

    def __init__(self) -> None:
        self.queue: queue.Queue[list[Change]] = queue.Queue()
        self.warnings: list[str] = []

    def next(self, timeout: float = 5.0) -> list[Change]:
        return self.queue.get(timeout=timeout)

    def none_within(self, seconds: float = QUIET) -> bool:
        try:
            extra = self.queue.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected batch: {extra}")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>one</h1>")
    return root


@pytest.fixture
def batches(site: Path) -> Iterator[Batches]:
    found = Batches()
    ignore = ["*.map", "dist", "build/tmp"]
    with ChangeWatcher([site], found.queue.put, ignore=ignore, on_warning=found.warnings.append):
        yield found


def test_one_write_is_one_batch(site: Path, batches: Batches) -> None:
    (site / "index.html").write_text("<h1>two</h1>")
    assert batches.next() == [Change("modified", str(site / "index.html"))]
    assert batches.none_within()


def test_a_burst_of_200_files_is_one_batch(site: Path, batches: Batches) -> None:
    for i in range(200):
        (site / f"chunk{i:03}.js").write_text(f"// {i}")
    batch = batches.next()
    files = [c.path for c in batch if c.path.endswith(".js")]
    assert len(files) == 200
    assert batches.none_within()


def test_an_editors_save_dance_is_one_modification(site: Path, batches: Batches) -> None:
    page = site / "index.html"
    (site / "4913").write_text("")  # vim's probe
    (site / "4913").unlink()
    page.rename(site / "index.html~")  # backup by rename
    page.write_text("<h1>saved</h1>")
    (site / ".index.html.swp").write_text("swap")
    (site / "index.html~").unlink()
    assert batches.next() == [Change("modified", str(page))]
    assert batches.none_within()


def test_ignored_changes_never_reload(site: Path) -> None:
    venv = site / "env"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (site / "build").mkdir()
    (site / "sub").mkdir()
    batches = Batches()
    watcher = ChangeWatcher([site], batches.queue.put, ignore=["*.map", "dist", "build/tmp"])
    watcher.start()
    for name in [
        "node_modules/pkg/index.js",
        ".git/objects/ab/cdef",
        "__pycache__/x.cpython-311.pyc",
        ".venv/lib/site.py",
        "env/lib/site.py",  # a virtualenv by its pyvenv.cfg, whatever its name
        "page.html.swp",
        "page.html~",
        ".#page.html",
        "#page.html#",
        "4913",
        "app.js.map",  # --ignore '*.map'
        "dist/app.js",  # --ignore dist (a name at any depth)
        "sub/dist/app.js",
        "build/tmp/x.js",  # --ignore build/tmp (a path)
    ]:
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert batches.none_within()
    (site / "build" / "kept.js").write_text("x")
    assert batches.next() == [Change("added", str(site / "build" / "kept.js"))]
    watcher.stop()


def test_stop_event_ends_the_thread_quickly(site: Path) -> None:
    baseline = threading.active_count()
    stop = threading.Event()
    watcher = ChangeWatcher([site], lambda changes: None, stop=stop)
    watcher.start()
    assert threading.active_count() == baseline + 1
    started = time.monotonic()
    stop.set()
    watcher.stop()
    assert time.monotonic() - started < 1
    assert threading.active_count() == baseline


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WatchError, match="cannot watch"):
        ChangeWatcher([tmp_path / "missing"], lambda changes: None).start()


def test_forced_polling_sees_changes(site: Path) -> None:
    found = Batches()
    with ChangeWatcher([site], found.queue.put, force_polling=True, poll_ms=50) as watcher:
        assert watcher.polling
        (site / "new.html").write_text("new")
        # Polling may also see the folder's own mtime move; the file must be there.
        batch = found.next()
        assert Change("added", str(site / "new.html")) in batch
        assert {change.path for change in batch} <= {str(site), str(site / "new.html")}


def test_a_failing_callback_is_reported_not_raised(site: Path) -> None:
    errors: list[str] = []
    done = threading.Event()

    def explode(changes: list[Change]) -> None:
        raise RuntimeError("boom")

    def on_error(message: str, error: BaseException) -> None:
        errors.append(f"{message}: {error}")
        done.set()

    with ChangeWatcher([site], explode, on_error=on_error):
        (site / "index.html").write_text("x")
        assert done.wait(5)
    assert errors == ["live reload stopped: the watcher failed: boom"]


@pytest.mark.skipif(
    shutil.which("unshare") is None
    or subprocess.run(["unshare", "-U", "-r", "true"], capture_output=True).returncode != 0,
    reason="needs user namespaces (unshare -U -r) to lower the inotify limit for one process",
)
def test_the_watch_limit_falls_back_to_polling(site: Path) -> None:
    """A real inotify limit: a user namespace allowed only 2 watches, and a 10-folder tree."""
    for i in range(10):
        (site / f"dir{i}").mkdir()
    script = textwrap.dedent(
        f"""
        import queue
        from devserve.reload.watcher import ChangeWatcher
        found, warnings = queue.Queue(), []
        with ChangeWatcher([{str(site)!r}], found.put, on_warning=warnings.append, poll_ms=50) as w:
            open({str(site / "dir9" / "new.html")!r}, "w").write("x")
            batch = found.get(timeout=10)
            print(w.polling, [tuple(c) for c in batch if c.path.endswith(".html")], warnings)
        """
    )
    result = subprocess.run(
        ["unshare", "-U", "-r", "sh", "-c",
         'echo 2 > /proc/sys/user/max_inotify_watches && exec "$0" -c "$1"',
         sys.executable, script],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # polling may also report dir9 itself (its mtime moved); the new file is what counts
    assert result.stdout.startswith(f"True [('added', '{site / 'dir9' / 'new.html'}')] ")
    assert "too many folders to watch" in result.stdout
    assert "polling for changes every 50 ms" in result.stdout


@pytest.mark.parametrize(
    ("relative", "ignored"),
    [
        ("index.html", False),
        ("css/site.css", False),
        ("node_modules/a/b.js", True),
        ("deep/node_modules/b.js", True),
        (".git/HEAD", True),
        (".hg/store", True),
        (".svn/x", True),
        ("__pycache__/m.pyc", True),
        (".venv/bin/python", True),
        ("venv/bin/python", True),
        ("page.swp", True),
        (".page.swp", True),
        ("page~", True),
        (".#page", True),
        ("#page#", True),
        ("4913", True),
        ("sub/4913", True),
        ("49130", False),
        ("x.map", True),  # --ignore *.map
        ("dist", True),  # --ignore dist/
        ("a/dist/b.js", True),
        ("distant.js", False),
        ("build/tmp/a.js", True),  # --ignore ./build/tmp
        ("build/tmpfile.js", False),
        ("other/build/tmp/a.js", False),  # a path pattern is relative to the watched folder
        ("docs/x.draft.html", True),  # --ignore docs/*.draft.html
        ("docs/x.html", False),
    ],
)
def test_ignore_rules(tmp_path: Path, relative: str, ignored: bool) -> None:
    rules = IgnoreRules([str(tmp_path)], ["*.map", "dist/", "./build/tmp", "docs/*.draft.html"])
    assert rules.ignored(str(tmp_path / relative)) is ignored


def test_paths_belong_to_the_innermost_watched_folder(tmp_path: Path) -> None:
    rules = IgnoreRules([str(tmp_path), str(tmp_path / "assets")], ["img/*"])
    assert rules.relative(str(tmp_path / "assets" / "img" / "a.png")) == (
        str(tmp_path / "assets"),
        ["img", "a.png"],
    )
    assert rules.ignored(str(tmp_path / "assets" / "img" / "a.png"))
    assert rules.relative(str(tmp_path)) == (str(tmp_path), [])
    assert not rules.ignored(str(tmp_path))


def test_css_only_and_the_log_description(tmp_path: Path) -> None:
    (tmp_path / "a.css").write_text("a")
    (tmp_path / "b.CSS").write_text("b")
    css = [Change("modified", str(tmp_path / "a.css")), Change("added", str(tmp_path / "b.CSS"))]
    assert is_css_only(css)
    assert not is_css_only([*css, Change("modified", str(tmp_path / "x.html"))])
    assert not is_css_only([Change("deleted", str(tmp_path / "gone.css"))])
    assert not is_css_only([])
    rules = IgnoreRules([str(tmp_path)])
    many = [Change("modified", str(tmp_path / f"f{i}.html")) for i in range(5)]
    assert describe(many, rules) == "f0.html, f1.html, f2.html and 2 more"
    gone = [Change("deleted", str(tmp_path / "d" / "x.css"))]
    assert describe(gone, rules) == "d/x.css (deleted)"
    extra = IgnoreRules([str(tmp_path / "site"), str(tmp_path / "templates")])
    assert describe([Change("modified", str(tmp_path / "templates" / "base.html"))], extra) == (
        "templates/base.html"
    )


# --------------------------------------------------------------------------- no reload storms


def test_a_file_this_process_writes_itself_is_never_a_change(site: Path) -> None:
    """`devserve serve site --reload 2> site/devserve.log`: its own log reloads nothing."""
    log = site / "devserve.log"
    log.write_text("")
    st = log.stat()
    found = Batches()
    with ChangeWatcher([site], found.queue.put, own_files=frozenset({(st.st_dev, st.st_ino)})):
        for i in range(20):
            with log.open("a") as stream:
                stream.write(f"line {i}\n")
            time.sleep(0.02)
        assert found.none_within(0.6)
        (site / "index.html").write_text("<h1>two</h1>")
        assert found.next() == [Change("modified", str(site / "index.html"))]


def test_a_file_that_keeps_changing_reloads_at_most_twice_a_second(site: Path) -> None:
    found = Batches()
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            with (site / "live.txt").open("a") as stream:
                stream.write("x")
            time.sleep(0.01)

    writer = threading.Thread(target=keep_writing)
    with ChangeWatcher([site], found.queue.put, min_gap=0.5):
        writer.start()
        time.sleep(3.0)
        stop.set()
        writer.join()
        time.sleep(0.8)  # what was still pending is handed on
    count = found.queue.qsize()
    assert 3 <= count <= 8, count  # about 2 a second for 3 s, never one per write


def test_a_file_name_that_is_not_utf8_neither_crashes_nor_stops_the_watcher(site: Path) -> None:
    found = Batches()
    errors: list[str] = []
    folder = os.fsencode(site)
    with ChangeWatcher(
        [site],
        found.queue.put,
        on_warning=found.warnings.append,
        on_error=lambda message, error: errors.append(message),
    ):
        with open(folder + b"/from-a-zip-\xff.html", "w") as stream:
            stream.write("x")
        assert found.next()  # the change still reloads pages
        (site / "index.html").write_text("<h1>after</h1>")
        deadline = time.monotonic() + 5
        seen: list[Change] = []
        while (
            time.monotonic() < deadline and Change("modified", str(site / "index.html")) not in seen
        ):
            seen = found.next()
    assert Change("modified", str(site / "index.html")) in seen  # still watching
    assert errors == []
    assert len([w for w in found.warnings if "not valid UTF-8" in w]) == 1


def test_devserve_logging_into_its_own_folder_does_not_reload_pages(site: Path) -> None:
    """The real thing: `devserve serve site --reload 2> site/devserve.log`, a browser's
    event stream open, and requests that each add a line to that log."""
    log_path = site / "devserve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devserve", "serve", str(site), "--port", "0", "--reload"],
            env=devserve_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        port = 0
        deadline = time.monotonic() + 20
        while not port and time.monotonic() < deadline:
            found = re.search(r"http://127\.0\.0\.1:(\d+)", log_path.read_text())
            port = int(found[1]) if found else 0
            time.sleep(0.05)
        assert port, log_path.read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as stream:
            stream.sendall(b"GET /__devserve__/events HTTP/1.1\r\nHost: x\r\n\r\n")
            seen = b""
            while b'"type":"hello"' not in seen:
                seen += stream.recv(65536)
            for i in range(15):  # each one is a line in devserve.log
                with contextlib.suppress(urllib.error.HTTPError):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/missing-{i}", timeout=5)
                time.sleep(0.05)
            stream.settimeout(1.5)
            with contextlib.suppress(TimeoutError):
                while b'"type":"change"' not in seen:
                    seen += stream.recv(65536)
            assert b'"type":"change"' not in seen, "the server's own log reloaded the page"
            assert log_path.read_text().count("missing-") >= 15  # the log was written
            (site / "index.html").write_text("<h1>changed</h1>")
            stream.settimeout(5)
            while b'"type":"change"' not in seen:
                seen += stream.recv(65536)
    finally:
        process.terminate()
        process.wait(15)
