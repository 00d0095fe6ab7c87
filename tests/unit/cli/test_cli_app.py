"""``inspect app``: registered with the CLI, flags, errors in one line."""

from __future__ import annotations

import pytest

from defectkit.cli import build_parser, main


def test_inspect_app_is_registered_with_its_flags():
    args = build_parser().parse_args(["app", "--project", "p", "--port", "7999"])
    assert (args.project, args.host, args.port) == ("p", "127.0.0.1", 7999)
    assert args.func.__module__ == "defectkit.cli.app"


def test_defaults():
    args = build_parser().parse_args(["app"])
    assert (args.project, args.host, args.port) == ("inspection-project", "127.0.0.1", None)


def test_a_bad_port_is_one_line_and_exit_2(capsys):
    assert main(["app", "--port", "70000"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err


def test_launch_is_called_with_the_flags(monkeypatch, capsys):
    from defectkit.cli import app as cli

    calls = []
    monkeypatch.setattr(cli, "launch", lambda project, **kw: calls.append((project, kw)))
    assert main(["app", "--project", "x", "--host", "0.0.0.0", "--port", "8000"]) == 0
    assert calls == [("x", {"host": "0.0.0.0", "port": 8000, "block": True})]
    assert "no login" in capsys.readouterr().err  # exposed beyond this machine: warned


def test_a_project_error_is_one_line(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"x")
    pytest.importorskip("gradio")
    assert main(["app", "--project", str(tmp_path / "photos")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inspect: error:") and "not a labelling project" in err
