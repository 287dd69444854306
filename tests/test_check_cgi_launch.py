"""devserve.check.cgi_scripts: a #! line's interpreter is found as the gateway starts it.

The environment (PATH) and the user are the gateway's; the search is the
kernel's and env's. The check's verdict for each script is held to what the
real gateway answers for it (issue 15: every ``#!/usr/bin/env python3`` script
was DS606 under root, because the name was looked up on root's PATH).
"""

from __future__ import annotations

import http.client
import os
import shutil
from pathlib import Path

import pytest

from devserve.check import CheckConfig
from devserve.check.cgi_scripts import env_command, execvp_search, shebang_launch
from devserve.check.server_model import serve_config
from tests.check_support import CGI, File, build, run_check
from tests.support import port_of, running_devserve

BODY = "echo 'Content-Type: text/plain'\necho\necho ran\n"
# Scripts run as nobody only when the tests (and so the gateway) run as root.
AS_ROOT = os.geteuid() == 0


def _script(line: str) -> File:
    return File(f"#!{line}\n{BODY}", 0o755)


def _fetch(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def interpreters(tmp_path: Path, public_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH: a folder nobody cannot enter (as root's ~/.pyenv/shims), then one it can.

    ``private/sh`` is a second sh that only its owner reaches (pytest's tmp is
    0700); ``private/devserve-private-sh`` exists only there; ``public/devserve-
    locked-sh`` is a copy of sh that only its owner may execute (0744).
    """
    private = tmp_path / "private"
    private.mkdir()
    (private / "sh").symlink_to("/bin/sh")
    (private / "devserve-private-sh").symlink_to("/bin/sh")
    public = public_tmp / "bin"
    public.mkdir()
    shutil.copy(os.path.realpath("/bin/sh"), public / "devserve-locked-sh")
    (public / "devserve-locked-sh").chmod(0o744)
    monkeypatch.setenv("PATH", f"{private}:{public}:/usr/bin:/bin")
    return public


# script, the #! line (``{public}`` is the public bin folder), the code found as root
LAUNCHES = [
    ("env-sh.sh", "/usr/bin/env sh", None),  # the issue: a later PATH entry has it
    ("split.sh", "/usr/bin/env -S sh -e", None),
    ("no-env.sh", "/usr/bin/env -S -i sh", None),  # no PATH: the default /bin:/usr/bin
    ("direct.sh", "/bin/sh -e", None),
    ("missing.sh", "/usr/bin/env devserve-no-such-interpreter", "DS603"),
    ("one-name.sh", "/usr/bin/env sh -e", "DS603"),  # env looks for "sh -e"
    ("options.sh", "/usr/bin/env -i sh", "DS603"),  # "-i sh" is one invalid option
    ("bad-path.sh", "/usr/bin/env -S PATH=/nonexistent sh", "DS603"),
    ("direct-missing.sh", "/usr/bin/devserve-no-such-interpreter", "DS603"),
    ("private-only.sh", "/usr/bin/env devserve-private-sh", "DS606" if AS_ROOT else None),
    ("locked.sh", "/usr/bin/env devserve-locked-sh", "DS606" if AS_ROOT else None),
    ("locked-direct.sh", "{public}/devserve-locked-sh", "DS606" if AS_ROOT else None),
]


def test_check_agrees_with_the_gateway_on_which_scripts_start(
    interpreters: Path, public_tmp: Path
) -> None:
    root = public_tmp / "site"
    build(root, {f"cgi-bin/{name}": _script(line.format(public=interpreters))
                 for name, line, _ in LAUNCHES})  # fmt: skip
    # runs_as_root None: as this process, which is who the gateway below runs as
    report = run_check(root, runs_as_root=None, **CGI)
    found = {f.path.removeprefix("cgi-bin/"): f.code for f in report.findings}
    assert found == {name: code for name, _, code in LAUNCHES if code is not None}
    config = serve_config(CheckConfig(directory=root, **CGI), str(root))
    with running_devserve(config) as (server, _, _):
        answers = {name: _fetch(port_of(server), f"/cgi-bin/{name}") for name, _, _ in LAUNCHES}
    for name, _, code in LAUNCHES:
        status, body = answers[name]
        assert (status == 200 and body == b"ran\n") == (code is None), (name, status, body)


def test_a_root_only_interpreter_first_on_path_is_no_finding(
    interpreters: Path, public_tmp: Path
) -> None:
    """The issue's report as the check models it, whoever runs the tests."""
    root = public_tmp / "site"
    build(root, {"cgi-bin/x.sh": _script("/usr/bin/env sh")})
    assert run_check(root, runs_as_root=True, **CGI).findings == ()


def test_nobody_is_told_which_interpreter_it_cannot_execute(
    interpreters: Path, public_tmp: Path
) -> None:
    root = public_tmp / "site"
    build(root, {"cgi-bin/locked.sh": _script("/usr/bin/env devserve-locked-sh")})
    (finding,) = run_check(root, runs_as_root=True, **CGI).findings
    assert finding.code == "DS606"
    assert finding.message == (
        f"#!/usr/bin/env devserve-locked-sh: nobody cannot execute "
        f"{interpreters}/devserve-locked-sh (-rwxr--r-- {_me()}), and there is no other "
        f"devserve-locked-sh on the script's PATH {os.environ['PATH']} (502)"
    )


def test_a_missing_interpreter_names_the_path_searched(
    interpreters: Path, public_tmp: Path
) -> None:
    root = public_tmp / "site"
    build(root, {"cgi-bin/m.sh": _script("/usr/bin/env devserve-nope")})
    (finding,) = run_check(root, runs_as_root=True, **CGI).findings
    assert (finding.code, finding.message) == (
        "DS603",
        f"#!/usr/bin/env devserve-nope: no devserve-nope on the script's PATH "
        f"{os.environ['PATH']} (502)",
    )


def test_without_path_env_searches_the_default(public_tmp: Path) -> None:
    root = public_tmp / "site"
    build(root, {"cgi-bin/m.sh": _script("/usr/bin/env -S -i devserve-nope")})
    (finding,) = run_check(root, runs_as_root=True, **CGI).findings
    assert finding.message == (
        f"#!/usr/bin/env -S -i devserve-nope: no devserve-nope on the script's default PATH "
        f"{os.defpath} (502)"
    )


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


# ----------------------------------------------------------------- the pieces, as tables


@pytest.mark.parametrize(
    ("argument", "path", "command", "searched", "refused"),
    [
        (None, "/bin", None, "/bin", False),
        ("python3", "/bin", "python3", "/bin", False),
        ("python3 -u", "/bin", None, "/bin", True),  # one name with a space
        ("-S python3 -u", "/bin", "python3", "/bin", False),
        ("-vS python3", "/bin", "python3", "/bin", False),
        ("-S -i python3", "/bin", "python3", None, False),
        ("-S - python3", "/bin", "python3", None, False),
        ("-S -u PATH python3", "/bin", "python3", None, False),
        ("-S -u LANG python3", "/bin", "python3", "/bin", False),
        ("-S --unset=PATH python3", "/bin", "python3", None, False),
        ("-S PATH=/opt/bin python3", "/bin", "python3", "/opt/bin", False),
        ("-S LANG=C python3", "/bin", "python3", "/bin", False),
        ("-S -- python3", "/bin", "python3", "/bin", False),
        ("-S -C /tmp python3", "/bin", "python3", "/bin", False),
        ("-i python3", "/bin", None, "/bin", True),  # an invalid option cluster
        ("-i", "/bin", None, None, False),  # runs nothing
        ("LANG=C", None, None, None, False),
    ],
)
def test_env_command(
    argument: str | None, path: str | None, command: str | None, searched: str | None,
    refused: bool,
) -> None:  # fmt: skip
    run = env_command(argument, path)
    assert (run.command, run.search_path, run.error is not None) == (command, searched, refused)


def test_execvp_search_skips_what_the_user_cannot_run(tmp_path: Path) -> None:
    build(tmp_path, {"a/tool": File("x", 0o755), "b/tool": File("x", 0o755),
                     "c/tool/": "", "cwd/tool": File("x", 0o755)})  # fmt: skip
    a, b, c, cwd = (str(tmp_path / name) for name in ("a", "b", "c", "cwd"))

    def everything(path: str) -> bool:
        return True

    assert execvp_search("tool", f"{c}:{a}:{b}", cwd, everything) == (f"{a}/tool", [])
    assert execvp_search("tool", f"{a}:{b}", cwd, lambda p: p != f"{a}/tool") == (
        f"{b}/tool",
        [f"{a}/tool"],
    )
    assert execvp_search("tool", f"{a}", cwd, lambda p: False) == (None, [f"{a}/tool"])
    assert execvp_search("tool", f"{c}:", cwd, everything) == (f"{cwd}/tool", [])  # "" is cwd
    assert execvp_search("tool", "/nonexistent", cwd, everything) == (None, [])
    assert execvp_search("./tool", "/nonexistent", cwd, everything) == (f"{cwd}/./tool", [])
    assert execvp_search("sh", None, cwd, everything)[0] == "/bin/sh"  # os.defpath


def test_a_relative_interpreter_is_found_from_the_script_folder(tmp_path: Path) -> None:
    build(tmp_path, {"bin/run": File("x", 0o755), "cgi-bin/": ""})
    launch = shebang_launch("../bin/run", str(tmp_path / "cgi-bin"), {}, None)
    assert launch == (  # the kernel resolves it from the working folder, the script's own
        [str(tmp_path / "cgi-bin" / "../bin/run")],
        None,
    )
