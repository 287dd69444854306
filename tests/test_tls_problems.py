"""devserve._tls.tls_problem: each usual TLS mistake is named, with the file, in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve._tls import tls_problem
from tests.support import run_main, self_signed_certificate


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(_mkdir(tmp_path / "plain"))


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_a_good_pair_has_no_problem(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    assert tls_problem(cert, key, "") is None


def test_a_certificate_file_holding_its_key_needs_no_key_option(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = pair
    both = tmp_path / "both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    assert tls_problem(both, None, "") is None


def test_problems_are_named(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = pair
    other_cert, other_key = self_signed_certificate(_mkdir(tmp_path / "other"))
    locked_cert, locked_key = self_signed_certificate(_mkdir(tmp_path / "locked"), password="pw")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases = [
        ((cert, None, ""), f"no private key: {cert} holds only the certificate; pass the key"),
        ((key, cert, ""), "--tls-cert and --tls-key are swapped"),
        ((key, None, ""), f"{key} holds a private key, not a certificate"),
        ((text, key, ""), f"{text} is not a PEM certificate"),
        ((cert, text, ""), f"{text} is not a PEM private key"),
        ((locked_cert, locked_key, ""), "is encrypted: give its password with --tls-password-file"),
        ((locked_cert, locked_key, "wrong"), "wrong password for the key in"),
        ((cert, other_key, ""), f"the key in {other_key} does not belong to the certificate"),
    ]
    assert tls_problem(locked_cert, locked_key, "pw") is None
    assert tls_problem(other_cert, other_key, "") is None
    for args, expected in cases:
        problem = tls_problem(*args)
        assert problem is not None and expected in problem, (args, problem)
        assert "_ssl.c" not in problem and "PEM lib" not in problem


def test_the_command_line_says_the_cause(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = pair
    args = ["serve", str(tmp_path), "--tls-cert", str(key), "--tls-key", str(cert)]
    status, output = run_main(args)
    assert status == 2
    expected = "--tls-cert and --tls-key are swapped: the certificate file holds a key"
    assert output == f"devserve: error: {expected}\n"
