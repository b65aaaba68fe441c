"""`make bench-latency`'s sweep: the sizes it accepts and the line it fits through the p99s."""

from __future__ import annotations

import pytest

from scripts.bench_latency import main, sizes_of, sweep, sweep_table


def _result(n: int, p99: float) -> dict[str, float]:
    return {"n": n, "p50": p99 * 0.8, "p95": p99 * 0.95, "p99": p99, "cpu_ms_per_payment": 45.0}


def test_sizes_are_sorted_and_unique() -> None:
    assert sizes_of("200") == [200]
    assert sizes_of("100, 25,50,25,") == [25, 50, 100]


@pytest.mark.parametrize("spec", ["", "0", "-5", "x", "25,ten", " , "])
def test_sizes_that_are_not_positive_integers_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="positive integers"):
        sizes_of(spec)


def test_bad_sizes_are_a_usage_error_before_any_stack_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--invoices", "50,0"])
    assert exited.value.code == 2
    assert "positive integers" in capsys.readouterr().err


def test_the_slope_is_least_squares_through_the_origin() -> None:
    # p99 = 0.04 s x n exactly, then one point off the line: the fit is sum(n * p99) / sum(n * n)
    assert sweep([_result(25, 1.0), _result(50, 2.0), _result(100, 4.0)])["seconds_per_payment"] == 0.04
    fitted = sweep([_result(10, 1.0), _result(20, 1.0)])
    assert fitted["seconds_per_payment"] == round((10 * 1.0 + 20 * 1.0) / (10 * 10 + 20 * 20), 4)


def test_the_largest_size_under_two_seconds_is_named() -> None:
    fitted = sweep([_result(25, 1.1), _result(50, 1.99), _result(100, 2.0), _result(200, 8.0)])
    assert fitted["under_2s_up_to"] == 50
    assert [size["n"] for size in fitted["sizes"]] == [25, 50, 100, 200]
    assert sweep([_result(200, 7.7)])["under_2s_up_to"] is None


def test_the_table_shows_each_size_and_the_fit() -> None:
    results = [_result(25, 1.0), _result(50, 2.5)]
    table = sweep_table(results, sweep(results))
    assert "25" in table.splitlines()[1] and "40.0" in table.splitlines()[1]  # p99/n in ms
    assert "p99 < 2 s up to n = 25" in table
