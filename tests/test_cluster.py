"""The scheduler layer (matchkit.runtime.cluster): parsing, the runners, errors crossing process boundaries."""

from __future__ import annotations

import argparse
import os
import pickle

import pytest

from matchkit.errors import InputFileError, MatchkitError, SchemaError
from matchkit.runtime.cluster import (
    Scheduler,
    add_scheduler_arguments,
    open_runner,
    parse_scheduler,
    split_evenly,
)


def square(value: int) -> int:
    return value * value


def pid_of(_: int) -> int:
    return os.getpid()


def fail_on_three(value: int) -> int:
    if value == 3:
        raise InputFileError("bad partition", path="part-3.parquet")
    return value


@pytest.mark.parametrize(("text", "expected"), [
    (None, Scheduler("inline")),
    ("local", Scheduler("local")),
    ("processes", Scheduler("processes")),
    ("tcp://10.0.0.5:8786", Scheduler("address", "tcp://10.0.0.5:8786")),
    (" tls://scheduler.example:8786 ", Scheduler("address", "tls://scheduler.example:8786")),
])
def test_parse_scheduler(text: str | None, expected: Scheduler) -> None:
    assert parse_scheduler(text) == expected


@pytest.mark.parametrize("text", ["threads", "tcp://host", "tcp://:8786", "tcp://host:port", "http://h:1", ""])
def test_parse_scheduler_refuses(text: str) -> None:
    with pytest.raises(MatchkitError, match="--scheduler"):
        parse_scheduler(text)


def test_arguments_parse_and_refuse(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="matchkit verify")
    add_scheduler_arguments(parser)
    args = parser.parse_args(["--scheduler", "tcp://h:1", "--partitions", "8"])
    assert args.scheduler == Scheduler("address", "tcp://h:1") and args.partitions == 8
    assert parser.parse_args([]).scheduler is None
    for bad in (["--partitions", "0"], ["--partitions", "x"], ["--scheduler", "spark"]):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(bad)
        assert exit_info.value.code == 2
    assert "--partitions" in capsys.readouterr().err


@pytest.mark.parametrize(("count", "parts"), [(0, 4), (1, 4), (10, 3), (10, 10), (7, 100), (1000, 7)])
def test_split_evenly(count: int, parts: int) -> None:
    ranges = split_evenly(count, parts)
    covered = [i for lo, hi in ranges for i in range(lo, hi)]
    assert covered == list(range(count))
    sizes = [hi - lo for lo, hi in ranges]
    assert not sizes or max(sizes) - min(sizes) <= 1
    assert len(ranges) <= max(1, parts)


def test_errors_pickle_as_they_were() -> None:
    error = InputFileError("lacks column(s): x", path="claims.parquet")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is InputFileError and str(back) == str(error) and back.path == "claims.parquet"
    schema = SchemaError(["a: bad", "b: worse"], path="s.toml")
    back_schema = pickle.loads(pickle.dumps(schema))
    assert back_schema.problems == ["a: bad", "b: worse"] and str(back_schema) == str(schema)


def test_inline_runner_runs_here() -> None:
    with open_runner(None) as runner:
        assert runner.workers == 1
        assert runner.map(square, range(5)) == [0, 1, 4, 9, 16]
        assert list(runner.imap(pid_of, range(3))) == [os.getpid()] * 3


@pytest.mark.parametrize("scheduler", ["processes", "local"])
def test_dask_runners_keep_order_and_reraise(scheduler: str) -> None:
    pytest.importorskip("distributed")
    with open_runner(scheduler, workers=2) as runner:
        assert runner.workers == 2
        assert runner.map(square, range(20)) == [i * i for i in range(20)]
        assert list(runner.imap(square, [3, 1, 2])) == [9, 1, 4]
        assert runner.map(square, []) == []
        assert os.getpid() not in set(runner.map(pid_of, range(4)))
        with pytest.raises(InputFileError, match="part-3.parquet: bad partition"):
            runner.map(fail_on_three, range(5))


def test_unreachable_cluster_is_a_clear_error() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(MatchkitError, match="cannot reach the Dask scheduler"), \
            open_runner("tcp://127.0.0.1:9", connect_timeout=2):
        pass


def test_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "dask", None)  # import dask raises ImportError, as on a machine without it
    for scheduler in ("processes", "local", "tcp://h:1"):
        with pytest.raises(MatchkitError, match=r"pip install 'matchkit\[dask\]'"), open_runner(scheduler):
            pass
