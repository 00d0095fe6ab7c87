"""Flags -> ServeConfig, and the refusals that happen before anything is loaded."""

import argparse
from dataclasses import fields, replace
from pathlib import Path

import pytest

from defectkit.apps.daemon.config import ServeConfig, is_loopback, read_token
from defectkit.apps.daemon.errors import ServeError
from defectkit.cli import serve as cli
from defectkit.errors import ConfigError, DefectkitError


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inspect")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_every_flag_is_one_config_field_and_back():
    args = _parse(
        "--bundle", "b", "--watch", "w", "--port", "9", "--workers", "3", "--max-upload-mb", "2"
    )
    dests = {k for k in vars(args) if k not in ("command", "func")}
    assert dests == {f.name for f in fields(ServeConfig)}
    config = ServeConfig.from_args(args)
    assert config.bundle == Path("b") and config.watch == Path("w")
    assert (config.port, config.workers, config.max_upload_bytes) == (9, 3, 2 * 1024 * 1024)
    assert args.func is cli.handler


def test_defaults_come_from_the_dataclass():
    config = ServeConfig.from_args(_parse("--bundle", "b"))
    assert config == ServeConfig(bundle=Path("b"))
    assert config.host == "127.0.0.1"


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("factory-pc", False)],
)  # fmt: skip
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


def test_exposed_host_without_token_is_refused(fake_bundle):
    with pytest.raises(ConfigError, match="--token-file"):
        ServeConfig(bundle=fake_bundle, host="0.0.0.0").validate()


def test_exposed_host_with_token_is_accepted(fake_bundle, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cr3t-token-0123456789\n")
    ServeConfig(bundle=fake_bundle, host="0.0.0.0", token_file=token).validate()
    assert read_token(token) == "s3cr3t-token-0123456789"


@pytest.mark.parametrize("content", ["", "short", "has space in the middle of it"])
def test_weak_or_malformed_tokens_are_refused(tmp_path, content):
    token = tmp_path / "token"
    token.write_text(content)
    with pytest.raises(ServeError, match="token"):
        read_token(token)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"workers": 0}, "--workers"),
        ({"queue_size": 0}, "--queue-size"),
        ({"port": 70000}, "--port"),
        ({"max_upload_mb": 0}, "--max-upload-mb"),
        ({"poll_interval": 0}, "--poll-interval"),
        ({"db": "mysql://x"}, "postgresql"),
        ({"watch": Path("/nonexistent/watch")}, "--watch"),
        ({"bundle": Path("/nonexistent/bundle")}, "--bundle"),
    ],
)
def test_bad_options_are_user_errors(fake_bundle, overrides, message):
    with pytest.raises(DefectkitError, match=message):
        replace(ServeConfig(bundle=fake_bundle), **overrides).validate()


def test_default_database_lives_in_the_watch_state_dir(tmp_path):
    assert ServeConfig(bundle=tmp_path, watch=tmp_path / "w").database() == str(
        tmp_path / "w/.defectkit/results.db"
    )
    assert ServeConfig(bundle=tmp_path).database().endswith("defectkit-serve.db")
    assert ServeConfig(bundle=tmp_path, db="postgresql://u@h/db").uses_postgres


def test_bundle_root_is_the_parent_of_the_bundle_path_not_its_target(tmp_path):
    releases = tmp_path / "releases" / "v3"
    releases.mkdir(parents=True)
    (tmp_path / "current").symlink_to(releases)
    assert ServeConfig(bundle=tmp_path / "current").bundle_root() == tmp_path.resolve()


def test_main_prints_user_errors_on_one_line(capsys, tmp_path):
    assert cli.main(["--bundle", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --bundle")


def _one_line_error(capsys, argv) -> str:
    from defectkit.testing.daemon import load_fake_bundle

    assert cli.main(argv, loader=load_fake_bundle) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_a_missing_token_file_is_one_line_naming_it(capsys, fake_bundle, tmp_path):
    missing = tmp_path / "missing.txt"
    err = _one_line_error(capsys, ["--bundle", str(fake_bundle), "--token-file", str(missing),
                                   "--db", str(tmp_path / "r.db"), "--port", "0"])  # fmt: skip
    assert str(missing) in err


def test_an_impossible_db_path_is_one_line_naming_it(capsys, fake_bundle, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")  # root may write anywhere, but not below a file
    db = not_a_folder / "sub" / "x.db"
    err = _one_line_error(capsys, ["--bundle", str(fake_bundle), "--db", str(db), "--port", "0"])
    assert str(db) in err


def test_a_missing_trusted_key_is_one_line_naming_it(capsys, fake_bundle, tmp_path):
    key = tmp_path / "lab.pub"
    err = _one_line_error(capsys, ["--bundle", str(fake_bundle), "--trust", str(key),
                                   "--db", str(tmp_path / "r.db"), "--port", "0"])  # fmt: skip
    assert str(key) in err


@pytest.mark.parametrize(
    "overrides, message",
    [({"settle_time": -1}, "--settle-time"), ({"header_timeout": 0}, "--header-timeout"),
     ({"body_timeout": float("nan")}, "--body-timeout")],
)  # fmt: skip
def test_bad_timing_options_are_user_errors(fake_bundle, overrides, message):
    with pytest.raises(DefectkitError, match=message):
        replace(ServeConfig(bundle=fake_bundle), **overrides).validate()
