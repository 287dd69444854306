"""Shell completion: the scripts devserve ships, and installing one for the user.

The scripts ask devserve itself what to complete (Typer's protocol: the
``_DEVSERVE_COMPLETE`` variable), so they never go stale; `completions/` holds
the same text, for packagers.

zsh: the file is an autoloaded completion function (``#compdef``). When compinit
loads it on the first TAB, its body runs once to define the function, so it must
also complete that first TAB (the ``loadautofunc`` branch) — a file that only
defines a function and calls ``compdef`` completes nothing until the second TAB.
Installing it adds ``~/.zfunc`` to ``fpath`` before compinit and nothing else:
no ``zstyle``, which would change completion for every other command.
"""

from __future__ import annotations

import os
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")
FILES = {"bash": "devserve.bash", "zsh": "_devserve", "fish": "devserve.fish"}

_BASH = """\
_devserve_completion() {
    local IFS=$'\\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \\
                   COMP_CWORD=$COMP_CWORD \\
                   _DEVSERVE_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _devserve_completion devserve
"""

_ZSH = """\
#compdef devserve
# zsh completion for devserve: a file named _devserve in a folder on $fpath.

_devserve() {
  eval "$(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _DEVSERVE_COMPLETE=complete_zsh devserve)"
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  # compinit autoloaded this file for the first TAB: complete it now.
  _devserve "$@"
else
  # sourced: register the function for the TABs to come.
  compdef _devserve devserve
fi
"""

_FISH = (
    'complete --command devserve --no-files --arguments "(env _DEVSERVE_COMPLETE=complete_fish '
    '_TYPER_COMPLETE_FISH_ACTION=get-args _TYPER_COMPLETE_ARGS=(commandline -cp) devserve)" '
    '--condition "env _DEVSERVE_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=is-args '
    '_TYPER_COMPLETE_ARGS=(commandline -cp) devserve"\n'
)

_SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}
# What ~/.zshrc needs for ~/.zfunc/_devserve to be found; put before compinit.
ZSH_FPATH_LINE = "fpath=(~/.zfunc $fpath)  # devserve completion"


class CompletionError(Exception):
    """Completion cannot be installed as asked (one line for the user)."""


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    if shell not in _SCRIPTS:
        raise CompletionError(f"no completion for {shell!r} (use one of: {', '.join(SHELLS)})")
    return _SCRIPTS[shell]


def write_all(folder: Path) -> None:
    """Write every shell's script into ``folder`` (what completions/ ships)."""
    for shell, name in FILES.items():
        (folder / name).write_text(script(shell))


def detect_shell(environ: dict[str, str] | None = None) -> str:
    """The user's shell, from ``$SHELL``; CompletionError if it is none of ours."""
    shell = Path((environ if environ is not None else os.environ).get("SHELL", "")).name
    if shell not in SHELLS:
        shown = shell or "unknown ($SHELL is not set)"
        raise CompletionError(f"cannot tell which shell to complete for: {shown}")
    return shell


def install(shell: str, home: Path) -> list[str]:
    """Install ``shell``'s completion for the user whose home is ``home``.

    Returns what was done, one line each. Nothing outside devserve's own
    completion is changed.
    """
    text = script(shell)
    if shell == "bash":
        data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local/share")
        target = data / "bash-completion/completions/devserve"
    elif shell == "fish":
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        target = config / "fish/completions/devserve.fish"
    else:
        target = home / ".zfunc/_devserve"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    done = [f"wrote {target}"]
    if shell == "zsh":
        done += _zshrc(home / ".zshrc")
    done.append("open a new shell for completion to take effect")
    return done


def _zshrc(path: Path) -> list[str]:
    """Make sure ~/.zfunc is on fpath before compinit runs (and that compinit runs)."""
    lines = path.read_text().splitlines() if path.exists() else []
    if any(".zfunc" in line and "fpath" in line for line in lines):
        return []
    at = next((i for i, line in enumerate(lines) if "compinit" in line), None)
    if at is None:
        lines += [ZSH_FPATH_LINE, "autoload -Uz compinit && compinit"]
    else:
        lines.insert(at, ZSH_FPATH_LINE)
    path.write_text("\n".join(lines) + "\n")
    return [f"added ~/.zfunc to fpath in {path}"]
