"""devserve.config: the value parsers every way in (options, and later files) shares."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devserve._auth import User
from devserve.config import (
    BadInput,
    CGIConfig,
    ProxyConfig,
    ReloadConfig,
    ServeConfig,
    describe_settings,
    parse_count,
    parse_port,
    parse_proxy,
    parse_seconds,
    parse_size,
    plural,
    size_text,
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("100", 100),
        ("1b", 1),
        ("512k", 512 * 1024),
        ("512K", 512 * 1024),
        ("10M", 10 * 1024**2),
        ("10 MB", 10 * 1024**2),
        ("10MiB", 10 * 1024**2),
        ("1.5G", 3 * 1024**3 // 2),
        ("2T", 2 * 1024**4),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text, "--max-body") == size


@pytest.mark.parametrize("text", ["", "x", "-1", "10Q", "1e3", "10MM", "\u0661\u0660", "M"])
def test_bad_sizes_name_the_option_and_the_value(text: str) -> None:
    with pytest.raises(BadInput, match=r"^--max-body: expected a size such as .*, not "):
        parse_size(text, "--max-body")


@pytest.mark.parametrize("size", [0, 1, 1000, 1024, 1536, 10 * 1024**2, 1024**3, 5 * 1024**4])
def test_size_text_reads_back(size: int) -> None:
    assert parse_size(size_text(size)) == size


def test_size_text_uses_the_largest_whole_unit() -> None:
    assert [size_text(n) for n in (1024**3, 10 * 1024**2, 1536)] == ["1G", "10M", "1536"]


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (
            parse_port,
            {"0": 0, "80": 80, "65535": 65535, " 8000 ": 8000},
            ["65536", "-1", "x", "\u0668\u0660", ""],
        ),
        (parse_seconds, {"0.5": 0.5, "30": 30.0, "1e1": 10.0}, ["0", "-1", "nan", "inf", "soon"]),
        (parse_count, {"1": 1, "1024": 1024}, ["0", "-3", "1.5", "many", "\u0661"]),
    ],
)
def test_numbers(parse: object, good: dict[str, object], bad: list[str]) -> None:
    assert callable(parse)
    for text, value in good.items():
        assert parse(text, "--option") == value
    for text in bad:
        with pytest.raises(BadInput, match=r"^--option: expected "):
            parse(text, "--option")


def test_every_setting_that_is_not_the_default_is_described() -> None:
    """The banner's Options line: a setting is never on without the banner saying so."""
    samples: dict[str, Any] = {
        "open_browser": True,
        "cors": True,
        "headers": (("X-A", "1"), ("X-B", "2")),
        "spa": True,
        "listing": False,
        "show_hidden": True,
        "follow_symlinks": True,
        "cache_control": "max-age=60",
        "tls_cert": Path("cert.pem"),
        "quiet": True,
        "cgi": CGIConfig(timeout=5, max_body=10 * 1024**2, env=(("A", "1"),)),
        "reload": ReloadConfig(watch=(Path("src"),), ignore=("*.map",)),
        "host_files": False,
        "clean_urls": True,
        "not_found_page": "missing.html",
        "idle_timeout": 5.0,
        "max_connections": 1,
        "request_timeout": 3.0,
        "protocol": "HTTP/1.0",
        "auth": (User("alice", "topsecret"), User("bob", "hunter2")),
        "tls_auto": True,  # not with tls_cert: on its own below
        "proxy": ProxyConfig(
            (parse_proxy("/api=http://127.0.0.1:5000"), parse_proxy("/ws/=https://b/")),
            keep_host=True,
            timeout=5.0,
            ca=Path("ca.pem"),
        ),
    }
    not_described = {"directory", "port", "bind", "lan", "tls_key", "tls_password_file"}
    not_described |= {"log_format"}
    for name in ServeConfig.__dataclass_fields__:
        if name in not_described:
            continue
        assert name in samples, f"describe_settings needs a case for the new field {name!r}"
        said = describe_settings(replace(ServeConfig(), **{name: samples[name]}))
        assert said, name
    assert describe_settings(ServeConfig()) == []
    together = {name: value for name, value in samples.items() if name != "tls_auto"}
    assert describe_settings(replace(ServeConfig(), **together)) == [
        "HTTP/1.0", "opens the browser", "cors", "2 extra headers", "spa", "no listing",
        "hidden files served", "symlinks leave the root", "Cache-Control: max-age=60", "tls",
        "quiet", "cgi: /cgi-bin, /htbin", "script timeout 5 s", "max body 10M",
        "1 script variable", "live reload", "1 more path watched", "1 ignore pattern",
        "no host files", "clean URLs", "404 page: missing.html", "idle timeout 5 s",
        "at most 1 connection", "request timeout 3 s", "auth: 2 users",
        "proxy /api -> http://127.0.0.1:5000", "proxy /ws/ -> https://b/",
        "backends get the client's Host", "proxy timeout 5 s", "backend certificates from ca.pem",
    ]  # fmt: skip
    assert describe_settings(ServeConfig(tls_auto=True, auth=samples["auth"][:1])) == [
        "auth: 1 user",
        "tls auto",
    ]


def test_plural() -> None:
    assert [plural(n, "request") for n in (0, 1, 2)] == ["0 requests", "1 request", "2 requests"]
    assert plural(2, "entry", "entries") == "2 entries"
