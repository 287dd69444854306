"""Shell completion, tried in the real shells: the first TAB of a zsh session completes,
and installing changes nothing but devserve's own completion."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devserve.completion import ZSH_FPATH_LINE, CompletionError, detect_shell, install, script

BIN = str(Path(sys.executable).parent)  # where the devserve console script is


def environment(home: Path, shell: str) -> dict[str, str]:
    return {
        "HOME": str(home),
        "ZDOTDIR": str(home),
        "SHELL": f"/usr/bin/{shell}",
        "PATH": f"{BIN}:/usr/bin:/bin",
        "TERM": "dumb",
        "LANG": "C.UTF-8",
    }


def run_devserve(home: Path, shell: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [f"{BIN}/devserve", *args],
        env=environment(home, shell),
        capture_output=True,
        text=True,
        timeout=60,
    )


def typed_in_zsh(home: Path, keys: bytes, wait_for: bytes, timeout: float = 20.0) -> bytes:
    """Type ``keys`` into an interactive zsh; what it showed until ``wait_for`` (or the end)."""
    main, child = pty.openpty()
    shell = subprocess.Popen(
        ["zsh", "-i"],
        stdin=child,
        stdout=child,
        stderr=child,
        env=environment(home, "zsh"),
        start_new_session=True,
    )
    os.close(child)
    seen = b""
    try:
        time.sleep(1.0)  # let .zshrc and compinit run
        os.write(main, keys)
        deadline = time.monotonic() + timeout
        while wait_for not in seen and time.monotonic() < deadline:
            if select.select([main], [], [], 0.2)[0]:
                try:
                    seen += os.read(main, 4096)
                except OSError:
                    break
        os.write(main, b"\x15exit\n")
        shell.wait(10)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait(10)
        os.close(main)
    return seen


def test_zsh_completes_on_the_first_tab_of_a_session(tmp_path: Path) -> None:
    zshrc = tmp_path / ".zshrc"
    zshrc.write_text("PS1='> '\nautoload -Uz compinit && compinit -u\n")
    result = run_devserve(tmp_path, "zsh", "--install-completion")
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path}/.zfunc/_devserve" in result.stdout
    lines = zshrc.read_text().splitlines()
    assert lines.index(ZSH_FPATH_LINE) < next(
        i for i, line in enumerate(lines) if "compinit" in line
    )
    assert "zstyle" not in zshrc.read_text()  # other commands complete as before
    shown = typed_in_zsh(tmp_path, b"devserve se\t", b"devserve serve")
    assert b"devserve serve" in shown, shown
    # Installing again changes nothing.
    before = zshrc.read_text()
    assert run_devserve(tmp_path, "zsh", "--install-completion").returncode == 0
    assert zshrc.read_text() == before


def test_zsh_install_without_compinit_adds_it(tmp_path: Path) -> None:
    (tmp_path / ".zshrc").write_text("alias ll='ls -l'\n")
    assert install("zsh", tmp_path)[0] == f"wrote {tmp_path}/.zfunc/_devserve"
    assert (tmp_path / ".zshrc").read_text().splitlines() == [
        "alias ll='ls -l'",
        ZSH_FPATH_LINE,
        "autoload -Uz compinit && compinit",
    ]


def test_bash_completes_from_the_installed_script(tmp_path: Path) -> None:
    result = run_devserve(tmp_path, "bash", "--install-completion")
    assert result.returncode == 0, result.stderr
    installed = tmp_path / ".local/share/bash-completion/completions/devserve"
    assert installed.read_text() == script("bash")
    asked = (
        f"source {installed}; COMP_WORDS=(devserve se); COMP_CWORD=1; "
        '_devserve_completion devserve; echo "${COMPREPLY[@]}"'
    )
    completed = subprocess.run(
        ["bash", "-c", asked], env=environment(tmp_path, "bash"), capture_output=True, text=True
    )
    assert completed.stdout.split() == ["serve"], completed.stderr


def test_fish_installs_where_fish_looks(tmp_path: Path) -> None:
    install("fish", tmp_path)
    assert (tmp_path / ".config/fish/completions/devserve.fish").read_text() == script("fish")


def test_show_completion_prints_the_script_for_the_shell(tmp_path: Path) -> None:
    result = run_devserve(tmp_path, "zsh", "--show-completion")
    assert result.stdout == script("zsh")


def test_an_unknown_shell_is_one_line_and_status_1(tmp_path: Path) -> None:
    result = run_devserve(tmp_path, "tcsh", "--install-completion")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "devserve: error: --install-completion: cannot tell which shell to complete for: tcsh"
    )
    with pytest.raises(CompletionError):
        detect_shell({})
