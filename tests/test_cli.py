"""Command-line entry points (mil_core.cli): errors as one line, --debug / MIL_DEBUG=1 for the
traceback, exit statuses."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mil_core.cli import add_debug_argument, debug_requested, run_main
from mil_core.errors import CheckpointError, ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, debug_env=False):
    env = {k: v for k, v in os.environ.items() if k != "MIL_DEBUG"}
    if debug_env:
        env["MIL_DEBUG"] = "1"
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def _assert_one_error_line(res, status):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == status, res.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_reproduce_bad_argument_is_one_line_and_debug_shows_the_traceback():
    res = _run("-m", "mil_core.reproduce", "--only", "99")
    _assert_one_error_line(res, 2)
    assert "--only 99" in res.stderr
    res = _run("-m", "mil_core.reproduce", "--only", "99", "--debug")
    assert res.returncode == 2
    assert "Traceback" in res.stderr and "ConfigError: --only 99" in res.stderr


def test_nbcheck_missing_folder_is_one_line_and_mil_debug_shows_the_traceback(tmp_path):
    args = ["-m", "mil_core.nbcheck", "--executed", str(tmp_path / "nothere"), "--committed",
            str(ROOT / "notebooks"), "--out", str(tmp_path / "out")]
    res = _run(*args)
    _assert_one_error_line(res, 2)
    assert "--executed" in res.stderr and "nothere" in res.stderr
    assert not (tmp_path / "out").exists()
    for debug in ({"debug_env": True}, {}):
        res = _run(*args, *([] if debug else ["--debug"]), **debug)
        assert res.returncode == 2 and "Traceback" in res.stderr
    assert "--debug" in _run("-m", "mil_core.nbcheck", "--help").stdout


# --- run_main in-process: every kind of error ---------------------------------------------------
def _main_raising(exc):
    def main(argv):
        raise exc
    return main


@pytest.mark.parametrize("exc, status, line", [
    (ConfigError("--jobs must be >= 1, got 0"), 2, "error: --jobs must be >= 1, got 0"),
    (CheckpointError("runs/x.safetensors already holds a checkpoint;\n pass resume=True"), 1,
     "error: runs/x.safetensors already holds a checkpoint; pass resume=True"),
    (DataError("no images in data/x"), 1, "error: no images in data/x"),
    (FileNotFoundError(2, "No such file or directory", "x.png"), 1,
     "error: FileNotFoundError: [Errno 2] No such file or directory: 'x.png' (rerun with "
     "--debug for the traceback)"),
    (ValueError("invalid literal for int() with base 10: 'x'"), 1,
     "error: ValueError: invalid literal for int() with base 10: 'x' (rerun with --debug for "
     "the traceback)"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_run_main_turns_user_errors_into_one_line(exc, status, line, capsys, monkeypatch):
    monkeypatch.delenv("MIL_DEBUG", raising=False)
    assert run_main(_main_raising(exc), []) == status
    err = capsys.readouterr().err
    assert err == line + "\n"
    assert run_main(_main_raising(exc), ["--debug"]) == status       # same status with --debug
    err = capsys.readouterr().err
    assert "Traceback" in err


def test_run_main_passes_bugs_status_and_arguments_through(capsys, monkeypatch):
    monkeypatch.delenv("MIL_DEBUG", raising=False)
    with pytest.raises(ZeroDivisionError):                           # a bug keeps its traceback
        run_main(_main_raising(ZeroDivisionError("bug")), [])
    seen = []
    assert run_main(lambda argv: seen.append(argv) or 7, ["--x", "1"]) == 7
    monkeypatch.setattr(sys, "argv", ["prog", "--from-sys"])
    assert run_main(lambda argv: seen.append(argv) or 0) == 0
    assert seen == [["--x", "1"], ["--from-sys"]]
    assert capsys.readouterr().err == ""


def test_debug_flag_and_environment(monkeypatch):
    monkeypatch.delenv("MIL_DEBUG", raising=False)
    assert debug_requested(["--only", "00", "--debug"])
    assert not debug_requested(["--only", "00"]) and not debug_requested(["--", "--debug"])
    for value, expected in [("1", True), ("yes", True), ("0", False), ("", False),
                            ("false", False)]:
        monkeypatch.setenv("MIL_DEBUG", value)
        assert debug_requested([]) == expected
    import argparse
    parser = add_debug_argument(argparse.ArgumentParser())
    assert parser.parse_args(["--debug"]).debug and not parser.parse_args([]).debug
