"""benchmarks/common.py: the bench's autogroup nice is given to the server it starts (with autogroups on, ``nice``
alone does not rank a server that runs in its own session)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import autogroup_nice, share_autogroup_nice


def _proc(tmp_path: Path, own: str, server: str) -> Path:
    for pid, text in (("self", own), ("4242", server)):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "autogroup").write_text(text)
    return tmp_path


def test_the_server_gets_the_bench_autogroup_nice(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "/autogroup-7 nice -10\n", "/autogroup-9 nice 0\n")
    assert autogroup_nice(proc / "self" / "autogroup") == -10
    share_autogroup_nice(4242, proc)
    assert (proc / "4242" / "autogroup").read_text() == "-10"  # what the kernel takes: the nice value alone
    share_autogroup_nice(1, proc)  # a server already gone: nothing raised


def test_a_bench_at_nice_0_or_without_autogroups_leaves_the_server_alone(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "/autogroup-7 nice 0\n", "/autogroup-9 nice 0\n")
    share_autogroup_nice(4242, proc)
    assert (proc / "4242" / "autogroup").read_text() == "/autogroup-9 nice 0\n"
    assert autogroup_nice(tmp_path / "missing") is None
