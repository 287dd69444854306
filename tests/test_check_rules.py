"""devserve.check.rules: the codes are stable, documented, and each has a case both ways."""

from __future__ import annotations

import re

from devserve.check import CODES, RULES
from tests import (
    test_check_cgi_scripts,
    test_check_exposure,
    test_check_pages,
    test_check_secure_context,
    test_check_walker,
    test_host_check,
)
from tests.check_support import ROOT

_MODULES = (
    test_check_exposure,
    test_check_walker,
    test_check_pages,
    test_check_cgi_scripts,
    test_host_check,
    test_check_secure_context,
)
REPORTED = [item for module in _MODULES for item in module.REPORTED]
NOT_REPORTED = [item for module in _MODULES for item in module.NOT_REPORTED]


def test_every_code_has_a_case_and_a_near_miss() -> None:
    assert {item.code for item in REPORTED} == set(CODES)
    assert {item.code for item in NOT_REPORTED} == set(CODES)


def test_codes_are_stable_and_documented() -> None:
    codes = [rule.code for rule in RULES]
    assert codes == sorted(codes)
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"DS[1-9]\d\d", code) for code in codes)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## `devserve check`", 1)[1].split("\n## ", 1)[0]
    for rule in RULES:
        row = re.search(rf"^\| `{rule.code}` \| (\w+) \|", section, re.M)
        assert row, f"{rule.code} is not in the README's table"
        assert row.group(1) == rule.severity
