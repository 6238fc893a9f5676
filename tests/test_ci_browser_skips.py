"""In CI a skipped browser test fails the run; elsewhere it stays a skip."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

BROWSER_TESTS = """
import pytest

@pytest.mark.browser
@pytest.mark.skipif(True, reason="no Chromium")
def test_marked_skip():
    pass

@pytest.mark.browser
def test_skipped_by_a_fixture(chromium):
    pass

@pytest.fixture
def chromium():
    pytest.skip("no Chromium")

@pytest.mark.browser
def test_skipped_while_running():
    pytest.skip("no Chromium")

@pytest.mark.browser
def test_that_runs():
    pass

@pytest.mark.browser
@pytest.mark.xfail(reason="known")
def test_expected_to_fail():
    raise AssertionError

def test_skip_without_the_marker():
    pytest.skip("not a browser test")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\naddopts = --strict-markers\nmarkers =\n    browser: drives Chromium\n"
    )
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(test_browser=BROWSER_TESTS)
    return pytester


def test_in_ci_a_skipped_browser_test_fails(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest("-rA")
    # Skips at setup (a skipif marker, a fixture) become errors, one while running a failure.
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines_random(
        [
            "ERROR test_browser.py::test_marked_skip - browser test skipped in CI*no Chromium",
            "ERROR test_browser.py::test_skipped_by_a_fixture - browser test skipped in CI*",
            "FAILED test_browser.py::test_skipped_while_running - browser test skipped in CI*",
            "SKIPPED * not a browser test",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_outside_ci_a_skipped_browser_test_is_a_skip(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = suite.runpytest()
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
