"""``devserve check``: what would go wrong if a folder were served."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from devserve.cli.app import EXIT_USAGE
from devserve.cli.options import (
    FollowSymlinksOption,
    NoHostFilesOption,
    NoListingOption,
    ShowHiddenOption,
    SpaOption,
    TLSMode,
)


class CheckFormat(str, Enum):
    """How `devserve check` writes its findings."""

    pretty = "pretty"
    json = "json"
    github = "github"


CheckDirectory = Annotated[Path, typer.Argument(help="Folder to check.", show_default=True)]
# How the server would be reached: serve's options, with what they mean to a check.
CheckLanOption = Annotated[
    bool,
    typer.Option(
        "--lan",
        help="Check as `serve --lan` would serve: to other machines (over plain HTTP, "
        "pages using APIs that need HTTPS are reported).",
    ),
]
CheckBindOption = Annotated[
    str | None,
    typer.Option(
        "--bind",
        "-b",
        metavar="ADDRESS",
        help="Check as `serve --bind ADDRESS` would serve (an address other machines "
        "reach counts as --lan).",
    ),
]
CheckTlsOption = Annotated[
    TLSMode | None,
    typer.Option(
        "--tls",
        metavar="auto",
        help="Check as `serve --tls auto` would serve: over HTTPS (no certificate is made).",
    ),
]
CheckTlsCertOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        metavar="FILE",
        help="Check as served over HTTPS with this certificate (the file is not read).",
    ),
]


def check(
    directory: CheckDirectory = Path("."),
    show_hidden: ShowHiddenOption = False,
    follow_symlinks: FollowSymlinksOption = False,
    spa: SpaOption = False,
    no_listing: NoListingOption = False,
    no_host_files: NoHostFilesOption = False,
    cgi_dir: Annotated[
        list[str] | None,
        typer.Option(
            "--cgi-dir",
            metavar="URL-PATH",
            help="Check as `devserve cgi --cgi-dir URL-PATH` would serve: every file in "
            "that URL folder is a CGI script (repeatable).",
        ),
    ] = None,
    output_format: Annotated[
        CheckFormat,
        typer.Option(
            "--format",
            help="pretty: grouped by severity; json: machine-readable; "
            "github: GitHub Actions annotations.",
        ),
    ] = CheckFormat.pretty,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with status 1 on warnings too, not only errors.")
    ] = False,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="CODE",
            help="Do not report this finding code, or a family such as DS5xx (repeatable).",
        ),
    ] = None,
    lan: CheckLanOption = False,
    bind: CheckBindOption = None,
    tls: CheckTlsOption = None,
    tls_cert: CheckTlsCertOption = None,
) -> None:
    """Check DIRECTORY for what would go wrong if it were served with these options.

    Exposed secrets, symlinks, broken links, MIME types, live reload, CGI scripts,
    file names, the _redirects and _headers files, and (with --lan or --bind and
    no TLS) APIs that need HTTPS on other machines. Exit status: 0 no errors,
    1 errors (with --strict, warnings too), 2 bad usage.
    """
    import sys

    from devserve.check import CheckConfig, CheckError, parse_ignore
    from devserve.check import check as run_check
    from devserve.console import CheckProgress, make_console, print_check_report, print_error

    errors = make_console()
    try:
        config = CheckConfig(
            directory=directory,
            show_hidden=show_hidden,
            follow_symlinks=follow_symlinks,
            spa=spa,
            listing=not no_listing,
            cgi_directories=tuple(cgi_dir or ()),
            host_files=not no_host_files,
            ignore=parse_ignore(ignore or ()),
            lan=lan,
            bind=bind,
            tls_auto=tls is TLSMode.auto,
            tls_cert=tls_cert,
        )
        progress = CheckProgress(errors)
        try:
            report = run_check(config, progress)
        finally:
            progress.close()
    except CheckError as error:
        print_error(errors, str(error))
        raise typer.Exit(EXIT_USAGE) from None
    print_check_report(make_console(sys.stdout), report, output_format.value)
    if report.failed(strict):
        raise typer.Exit(1)
