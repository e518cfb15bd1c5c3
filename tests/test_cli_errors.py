"""Every refusal of every command is one line, `mmtok COMMAND: error: ...`, exit code 2 for usage
errors and 1 for failures; `--debug` / MMTOK_DEBUG=1 shows the traceback (issue 19)."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import torch
from train_helpers import TINY_IMAGE_MODEL, tiny_config, write_config, write_images

import mmtok.tokenize
from mmtok import load_tokenizer
from mmtok.artifact import ArtifactError
from mmtok.cli import main
from mmtok.models import build_tokenizer
from mmtok.shards import shard_files

TINY_RVQ_IMAGE = {
    **TINY_IMAGE_MODEL,
    "quantizer": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 2}},
}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    torch.manual_seed(0)
    return build_tokenizer(TINY_RVQ_IMAGE).save_pretrained(tmp_path_factory.mktemp("tok") / "tok")


@pytest.fixture(autouse=True)
def no_hub_and_no_debug(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a refusal never waits on a network
    monkeypatch.delenv("MMTOK_DEBUG", raising=False)


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    """main's exit code (argparse's usage errors leave by SystemExit, as sys.exit would) and stderr's lines."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err.splitlines()


def refusal(argv, capsys, *, code: int) -> str:
    got, lines = run_cli(argv, capsys)
    command = argv[0]
    assert got == code, lines
    assert len(lines) == 1, lines
    prefix = f"mmtok {command}: error: "
    assert lines[0].startswith(prefix) and len(lines[0]) > len(prefix), lines[0]
    return lines[0][len(prefix) :]


def test_train(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "run", tmp_path / "data"))
    assert "train.bogus: unknown key" in refusal(["train", config, "train.bogus=1"], capsys, code=2)
    assert "train.batch_size: expected an integer" in refusal(["train", config, "train.batch_size=two"], capsys, code=2)
    assert "no such config file" in refusal(["train", tmp_path / "missing.yaml"], capsys, code=1)
    assert "required: config" in refusal(["train"], capsys, code=2)


def test_quickstart_bad_override(tmp_path, capsys):
    message = refusal(["quickstart", "--out", tmp_path / "qs", "train.max_stpes=3"], capsys, code=2)
    assert "train.max_stpes: unknown key" in message
    assert "--max-steps: must be an integer, got 'many'" in refusal(
        ["quickstart", "--max-steps", "many"], capsys, code=2
    )
    assert "--max-steps: must be a positive integer" in refusal(["quickstart", "--max-steps", "0"], capsys, code=2)


def test_export(tmp_path, capsys):
    assert "not a training run" in refusal(["export", tmp_path / "no-run", tmp_path / "tok"], capsys, code=1)


def test_convert(tmp_path, capsys):
    message = refusal(["convert", tmp_path, tmp_path / "tok", "bandwidth"], capsys, code=2)
    assert "must look like key.path=value" in message
    (tmp_path / "weights.safetensors").write_bytes(b"")
    refusal(["convert", tmp_path / "weights.safetensors", tmp_path / "tok"], capsys, code=2)
    assert "no such folder: ./no/such/model" in refusal(["convert", "./no/such/model", tmp_path], capsys, code=1)


def test_inspect(tok_dir, tmp_path, capsys):
    assert "does not exist" in refusal(["inspect", tmp_path / "nope"], capsys, code=1)
    assert "is a file" in refusal(["inspect", tok_dir / "config.json"], capsys, code=1)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("model.safetensors", "vocab.json"):
        (broken / name).write_bytes((tok_dir / name).read_bytes())
    config = json.loads((tok_dir / "config.json").read_text())
    del config["family"]
    (broken / "config.json").write_text(json.dumps(config))
    message = refusal(["inspect", broken], capsys, code=1)
    assert "no 'family'" in message and str(broken / "config.json") in message


def test_tokenize(tok_dir, tmp_path, capsys):
    write_images(tmp_path / "images", 2, size=16)
    out = tmp_path / "out"
    assert "does not exist" in refusal(["tokenize", tmp_path / "nope", tmp_path / "images", out], capsys, code=1)
    assert "--batch-size: must be a positive" in refusal(
        ["tokenize", tok_dir, tmp_path / "images", out, "--batch-size", "0"], capsys, code=2
    )
    assert "--num-codebooks: must be an integer" in refusal(
        ["tokenize", tok_dir, tmp_path / "images", out, "--num-codebooks", "two"], capsys, code=2
    )
    message = refusal(["tokenize", tok_dir, tmp_path / "images", out, "--num-codebooks", "3"], capsys, code=1)
    assert "num_codebooks" in message and "3" in message


def test_tokenize_passes_num_codebooks_and_break_lock(tok_dir, tmp_path, capsys, monkeypatch):
    seen = {}
    monkeypatch.setattr(mmtok.tokenize, "tokenize", lambda *args, **options: seen.update(options) or {})
    assert main(["tokenize", str(tok_dir), str(tmp_path), str(tmp_path / "out")]) == 0
    assert (seen["num_codebooks"], seen["break_lock"]) == (None, False)
    argv = ["tokenize", str(tok_dir), str(tmp_path), str(tmp_path / "out"), "--num-codebooks", "1", "--break-lock"]
    assert main(argv) == 0
    assert (seen["num_codebooks"], seen["break_lock"]) == (1, True)


def test_tokenize_num_codebooks_writes_the_prefix(tok_dir, tmp_path):
    images = write_images(tmp_path / "images", 2, size=16)
    out = tmp_path / "out"
    assert (
        main(
            ["tokenize", str(tok_dir), str(tmp_path / "images"), str(out), "--num-codebooks", "1", "--num-workers", "0"]
        )
        == 0
    )
    table = pq.read_table(shard_files(out)[0]).to_pylist()
    frozen = load_tokenizer(tok_dir)
    full = frozen.encode([str(p) for p in images])
    assert full.shape[-1] == 2
    for row, ids in zip(sorted(table, key=lambda r: r["key"]), full):
        assert row["token_shape"] == [8, 8, 1]
        assert torch.equal(frozen.vocab.unflatten_ids(torch.tensor(row["ids"]), row["token_shape"]), ids[..., :1])


def test_eval(tmp_path, capsys):
    write_images(tmp_path / "images", 1, size=16)
    assert "at least one TOKENIZER" in refusal(
        ["eval", tmp_path / "images", "--report", tmp_path / "r"], capsys, code=2
    )
    assert "required: --report" in refusal(["eval", tmp_path / "images"], capsys, code=2)
    message = refusal(["eval", tmp_path / "nope", tmp_path / "images", "--report", tmp_path / "r"], capsys, code=1)
    assert "does not exist" in message


def test_unknown_command_and_help(capsys):
    got, lines = run_cli(["tokenise"], capsys)
    assert got == 2 and len(lines) == 1 and lines[0].startswith("mmtok: error: argument COMMAND: invalid choice")
    with pytest.raises(SystemExit) as stop:
        main(["tokenize", "--help"])
    assert stop.value.code == 0 and "--num-codebooks N" in capsys.readouterr().out


def test_interrupt_and_unexpected_errors_are_one_line(tok_dir, capsys, monkeypatch):
    import mmtok.inspect

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(mmtok.inspect, "describe_artifact", interrupted)
    assert refusal(["inspect", tok_dir], capsys, code=130) == "interrupted"

    def broken(path):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(mmtok.inspect, "describe_artifact", broken)
    message = refusal(["inspect", tok_dir], capsys, code=1)
    assert message.startswith("RuntimeError: first line; second line") and "--debug" in message


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    for argv in (["--debug", "inspect", tmp_path / "nope"], ["inspect", tmp_path / "nope", "--debug"]):
        with pytest.raises(ArtifactError, match="does not exist"):
            main([str(a) for a in argv])
    monkeypatch.setenv("MMTOK_DEBUG", "1")
    with pytest.raises(ArtifactError, match="does not exist"):
        main(["inspect", str(tmp_path / "nope")])


def test_a_subprocess_sees_one_line_or_the_traceback(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("MMTOK_DEBUG", None)
    command = [sys.executable, "-m", "mmtok", "inspect", str(tmp_path / "nope")]
    plain = subprocess.run(command, capture_output=True, text=True, env=env)
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.splitlines() == [f"mmtok inspect: error: tokenizer folder {tmp_path / 'nope'} does not exist"]
    debug = subprocess.run(command, capture_output=True, text=True, env={**env, "MMTOK_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "ArtifactError: tokenizer folder" in debug.stderr
    usage = subprocess.run([*command[:3], "tokenize", "only-one"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2
    assert usage.stderr.splitlines() == [
        "mmtok tokenize: error: the following arguments are required: input, output_dir"
    ]


def test_tokenize_on_a_held_folder_is_a_failure_in_one_line(tok_dir, tmp_path, capsys):
    from mmtok.job_lock import FolderLock
    from mmtok.storage import Folder

    write_images(tmp_path / "images", 2, size=16)
    with FolderLock(Folder(tmp_path / "out")):
        message = refusal(
            ["tokenize", tok_dir, tmp_path / "images", tmp_path / "out", "--num-workers", 0], capsys, code=1
        )
    assert "is in use by another tokenize job" in message and "--break-lock" in message and "--debug" not in message
