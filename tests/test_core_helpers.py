"""The small shared helpers: atomic writes, hooks, error family and the CLI dispatcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from paco_core import cli, io
from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.errors import InputError, PaCoError


def test_atomic_write_json_sorted_and_replaces(tmp_path):
    target = tmp_path / "sub" / "state.json"
    io.atomic_write_json(target, {"b": 1, "a": 2})
    io.atomic_write_json(target, {"z": 0, "y": [1, 2]})
    assert json.loads(target.read_text()) == {"y": [1, 2], "z": 0}
    assert target.read_text().index('"y"') < target.read_text().index('"z"')
    assert sorted(os.listdir(target.parent)) == ["state.json"]


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "weights.bin"
    io.atomic_write_bytes(target, b"old")

    def failing_writer(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.atomic_write(target, failing_writer)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["weights.bin"]


def test_atomic_save_safetensors_round_trip(tmp_path):
    import torch
    from safetensors.torch import load_file

    tensors = {"a": torch.arange(6.0).reshape(2, 3).t(), "b": torch.ones(2, dtype=torch.bfloat16)}
    path = io.atomic_save_safetensors(tmp_path / "x.safetensors", tensors, metadata={"k": "v"})
    loaded = load_file(path)
    assert torch.equal(loaded["a"], tensors["a"])
    assert loaded["b"].dtype == torch.bfloat16


def test_hooks_report_then_check_cancel():
    calls = []

    def cancel():
        calls.append("cancel-check")
        if len(calls) > 2:
            raise KeyboardInterrupt

    hooks = Hooks(progress=lambda done, total: calls.append((done, total)), check_cancel=cancel)
    hooks.step(1, 3)
    assert calls == [(1, 3), "cancel-check"]
    with pytest.raises(KeyboardInterrupt):
        hooks.step(2, 3)
    NO_HOOKS.step(1, 1)


def test_error_family_is_catchable_as_value_error():
    error = InputError("`layout` should look like 2x2, got 'abc'")
    assert isinstance(error, PaCoError) and isinstance(error, ValueError)


def test_cli_turns_paco_errors_into_exit_code_1(capsys, monkeypatch):
    parser = cli.build_parser()
    assert parser.prog == "paco"

    def failing(args):
        raise InputError("judge needs at least 2 images, got 1")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(failing))
    assert cli.main(["boom"]) == 1
    assert "judge needs at least 2 images, got 1" in capsys.readouterr().err


def test_cli_turns_file_system_errors_into_one_line_and_debug_adds_the_traceback(capsys, monkeypatch):
    def failing(args):
        raise PermissionError(13, "Permission denied", "/read-only/run")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(failing))
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    line = "paco boom: error: Permission denied (/read-only/run). Check the path, its permissions and free disk space.\n"
    assert err == line
    parser = _parser_with(failing)
    parser.add_argument("--debug", action="store_true")
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["--debug", "boom"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.endswith(line)


def _parser_with(func):
    import argparse

    parser = argparse.ArgumentParser(prog="paco")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("boom").set_defaults(func=func)
    return parser


def test_cli_help_runs_in_a_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "paco_core.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage: paco" in result.stdout
