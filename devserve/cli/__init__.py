"""The ``devserve`` command line: the only package that imports Typer.

It parses options into a configuration, calls one core function, and turns
devserve's errors into exit statuses. `app` holds the top-level options
(app.py); the commands are registered on it below: `serve` and `cgi`
(serve_commands.py) and `check` (check_command.py), with the options they
share declared once (options.py); `main` (entry.py) is the console script.
"""

from devserve.cli.app import COMPLETION_FILES, app, completion_script, write_completions
from devserve.cli.check_command import check
from devserve.cli.entry import main
from devserve.cli.serve_commands import cgi, serve

# The commands, in the order ``devserve -h`` lists them.
app.command()(serve)
app.command()(cgi)
app.command()(check)

__all__ = ["COMPLETION_FILES", "app", "completion_script", "main", "write_completions"]
