"""Who a CGI script is told the user is (RFC 3875 4.1.11): only one devserve verified.

`devserve cgi` never turns an unverified ``Authorization`` field into
``REMOTE_USER``: git-http-backend, like many programs, allows a push when it is
set. With ``--auth``, the user devserve admitted is named (``AUTH_TYPE=Basic``),
so ``git push`` works with the right password and is refused otherwise. The
documented `CGIHTTPRequestHandler` keeps the stdlib's behaviour (tests/test_cgi.py).
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from devserve._auth import User
from devserve.config import CGIConfig, ServeConfig
from tests.support import port_of, raw_exchange, running_devserve, status_of

ENV_SCRIPT = (
    "#!/bin/sh\n"
    "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
    'printf "user=[%s] type=[%s] header=[%s]" "${REMOTE_USER-unset}" "${AUTH_TYPE-unset}" '
    '"${HTTP_AUTHORIZATION-unset}"\n'
)
MADE_UP = "Basic " + base64.b64encode(b"admin:anything").decode()


@pytest.fixture
def site(public_tmp: Path) -> Path:
    script = public_tmp / "cgi-bin" / "env.sh"
    script.parent.mkdir(mode=0o755)
    script.write_text(ENV_SCRIPT)
    script.chmod(0o755)
    return public_tmp


def _env_of(port: int, authorization: str = MADE_UP) -> bytes:
    reply = raw_exchange(
        port,
        f"GET /cgi-bin/env.sh HTTP/1.0\r\nAuthorization: {authorization}\r\n\r\n".encode(),
    )
    assert status_of(reply) == 200, reply
    return reply.partition(b"\r\n\r\n")[2]


def test_a_made_up_authorization_names_no_user(site: Path) -> None:
    with running_devserve(ServeConfig(directory=site, cgi=CGIConfig(), quiet=True)) as (s, _, _):
        body = _env_of(port_of(s))
    assert body == b"user=[unset] type=[unset] header=[unset]"


def test_the_raw_header_reaches_scripts_only_when_asked_for(site: Path) -> None:
    config = ServeConfig(directory=site, cgi=CGIConfig(pass_authorization=True), quiet=True)
    with running_devserve(config) as (s, _, _):
        body = _env_of(port_of(s))
    assert body == f"user=[unset] type=[unset] header=[{MADE_UP}]".encode()


ADMIN = User("admin", "anything")  # MADE_UP's credentials, now configured


def test_a_user_devserve_verified_is_named(site: Path) -> None:
    config = ServeConfig(directory=site, cgi=CGIConfig(), quiet=True, auth=(ADMIN,))
    with running_devserve(config) as (s, _, _):
        body = _env_of(port_of(s))
    assert body == b"user=[admin] type=[Basic] header=[unset]"


def test_with_auth_the_raw_header_still_needs_asking_for(site: Path) -> None:
    gateway = CGIConfig(pass_authorization=True)
    config = ServeConfig(directory=site, cgi=gateway, quiet=True, auth=(ADMIN,))
    with running_devserve(config) as (s, _, _):
        body = _env_of(port_of(s))
    assert body == f"user=[admin] type=[Basic] header=[{MADE_UP}]".encode()


def test_with_auth_a_wrong_password_reaches_no_script(site: Path) -> None:
    wrong = "Basic " + base64.b64encode(b"admin:other").decode()
    config = ServeConfig(directory=site, cgi=CGIConfig(), quiet=True, auth=(ADMIN,))
    with running_devserve(config) as (s, _, _):
        reply = raw_exchange(
            port_of(s), f"GET /cgi-bin/env.sh HTTP/1.0\r\nAuthorization: {wrong}\r\n\r\n".encode()
        )
    assert status_of(reply) == 401
    assert b"user=" not in reply


def test_with_auth_and_cors_an_unverified_preflight_runs_no_script(site: Path) -> None:
    config = ServeConfig(directory=site, cgi=CGIConfig(), quiet=True, auth=(ADMIN,), cors=True)
    preflight = (
        b"OPTIONS /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\nAccess-Control-Request-Method: POST\r\n"
        b"Content-Length: 5\r\n\r\nhello"
    )
    after = b"POST /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    with running_devserve(config) as (s, _, _):
        port = port_of(s)
        reply = raw_exchange(port, preflight + after)
        verified = raw_exchange(
            port, f"POST /cgi-bin/env.sh HTTP/1.0\r\nAuthorization: {MADE_UP}\r\n\r\n".encode()
        )
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert status_of(head) == 204, reply
    assert b"Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS" in head
    assert status_of(rest) == 401, rest  # its body was dropped, never read as a request
    assert b"user=" not in reply
    assert verified.endswith(b"user=[admin] type=[Basic] header=[unset]"), verified


# --------------------------------------------------------------------------- git push


def _git(
    *args: str, cwd: Path | None = None, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _ok(*args: str, cwd: Path | None = None, env: dict[str, str]) -> None:
    done = _git(*args, cwd=cwd, env=env)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"


@pytest.fixture
def repository(public_tmp: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A bare repository behind git-http-backend, as git's defaults leave it.

    (http.receivepack unset: git-http-backend takes pushes only when REMOTE_USER is.)
    """
    if shutil.which("git") is None:
        pytest.fail("git is needed (Debian: apt-get install git)")
    exec_path = _git("--exec-path", env=dict(os.environ)).stdout.strip()
    client = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    repos = public_tmp / "repos"
    _ok("init", "-q", "--bare", "-b", "main", str(repos / "r.git"), env=client)
    seed = tmp_path / "seed"
    _ok("init", "-q", "-b", "main", str(seed), env=client)
    (seed / "README").write_text("seed\n")
    _ok("add", "README", cwd=seed, env=client)
    _ok("commit", "-q", "-m", "seed", cwd=seed, env=client)
    _ok("push", "-q", str(repos / "r.git"), "main", cwd=seed, env=client)
    if os.geteuid() == 0:  # scripts run as nobody: the repository must be theirs
        nobody = pwd.getpwnam("nobody")
        for dirpath, dirnames, filenames in os.walk(repos):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.chown(name, nobody.pw_uid, nobody.pw_gid)
    script = public_tmp / "cgi-bin" / "git"
    script.parent.mkdir(mode=0o755)
    script.write_text(f"#!/bin/sh\nexec {exec_path}/git-http-backend\n")
    script.chmod(0o755)
    return repos, client


def _git_gateway(repos: Path, home: Path) -> CGIConfig:
    return CGIConfig(
        env=(
            ("GIT_PROJECT_ROOT", str(repos)),
            ("GIT_HTTP_EXPORT_ALL", "1"),
            ("HOME", str(home)),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_CONFIG_COUNT", "1"),
            ("GIT_CONFIG_KEY_0", "safe.directory"),
            ("GIT_CONFIG_VALUE_0", "*"),
        ),
        timeout=60,
    )


def test_a_push_with_a_made_up_user_is_refused(
    public_tmp: Path, tmp_path: Path, repository: tuple[Path, dict[str, str]]
) -> None:
    repos, client = repository
    gateway = _git_gateway(repos, public_tmp)
    with running_devserve(ServeConfig(directory=public_tmp, cgi=gateway, quiet=True)) as (s, _, _):
        url = f"http://127.0.0.1:{port_of(s)}/cgi-bin/git/r.git"
        work = tmp_path / "work"
        assert _git("clone", "-q", url, str(work), env=client).returncode == 0  # reading is open
        (work / "evil.txt").write_text("pushed by anyone\n")
        assert _git("add", "evil.txt", cwd=work, env=client).returncode == 0
        assert _git("commit", "-q", "-m", "evil", cwd=work, env=client).returncode == 0
        header = f"http.extraHeader=Authorization: {MADE_UP}"
        pushed = _git("-c", header, "push", "origin", "main", cwd=work, env=client)
    assert pushed.returncode != 0
    assert "403" in pushed.stderr or "not permitted" in pushed.stderr.lower(), pushed.stderr
    log = _git("--git-dir", str(repos / "r.git"), "log", "--oneline", "main", env=client).stdout
    assert "evil" not in log


PUSHER = User("pusher", "p@ss w:rd")


def _committed(work: Path, name: str, client: dict[str, str]) -> None:
    (work / f"{name}.txt").write_text(f"{name}\n")
    _ok("add", f"{name}.txt", cwd=work, env=client)
    _ok("commit", "-q", "-m", name, cwd=work, env=client)


def _log(repos: Path, client: dict[str, str]) -> str:
    return _git("--git-dir", str(repos / "r.git"), "log", "--oneline", "main", env=client).stdout


def test_git_push_through_cgi_auth(
    public_tmp: Path, tmp_path: Path, repository: tuple[Path, dict[str, str]]
) -> None:
    """`devserve cgi --auth`: clone and push with the password; without it or with a
    wrong one, nothing is read and nothing is pushed."""
    repos, client = repository
    config = ServeConfig(
        directory=public_tmp, cgi=_git_gateway(repos, public_tmp), quiet=True, auth=(PUSHER,)
    )
    with running_devserve(config) as (s, _, _):
        where = f"127.0.0.1:{port_of(s)}/cgi-bin/git/r.git"
        good = f"http://pusher:{urllib.parse.quote(PUSHER.password, safe='')}@{where}"
        wrong = f"http://pusher:wrong@{where}"
        refused = _git("clone", "-q", f"http://{where}", str(tmp_path / "anon"), env=client)
        assert refused.returncode != 0
        assert "401" in refused.stderr or "could not read Username" in refused.stderr
        refused = _git("clone", "-q", wrong, str(tmp_path / "wrong"), env=client)
        assert refused.returncode != 0
        assert "Authentication failed" in refused.stderr, refused.stderr

        work = tmp_path / "work"
        _ok("clone", "-q", good, str(work), env=client)
        _committed(work, "pushed with the password", client)
        _ok("push", "-q", "origin", "main", cwd=work, env=client)

        _committed(work, "pushed without it", client)
        anonymous = _git("push", f"http://{where}", "main", cwd=work, env=client)
        assert anonymous.returncode != 0
        _committed(work, "pushed with a wrong one", client)
        mistaken = _git("push", wrong, "main", cwd=work, env=client)
        assert mistaken.returncode != 0
        assert "Authentication failed" in mistaken.stderr, mistaken.stderr
    log = _log(repos, client)
    assert "pushed with the password" in log
    assert "pushed without it" not in log
    assert "pushed with a wrong one" not in log
