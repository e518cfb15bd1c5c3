"""`mmtok bench --smoke`, as a user runs it: every row runs, the table and the JSON agree, and the figures that
do not depend on the machine's speed hold (the search returns the peer's ids, the job's rows do not depend on
the number of processes, every family is encoded and decoded in both precisions)."""

import json
import subprocess
import sys

import pytest

from mmtok.cli import BENCH_ROWS

FAMILIES = {"image", "image1d", "audio", "video", "eeg"}


def run_bench(out, *options):
    result = subprocess.run(
        [sys.executable, "-m", "mmtok", "bench", "--smoke", "--out", str(out), *options],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads((out / "bench.json").read_text())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return run_bench(tmp_path_factory.mktemp("bench"))


def test_every_row_runs_and_the_table_holds_every_line_of_the_json(smoke):
    result, report = smoke
    rows = report["rows"]
    assert report["failed"] == []
    assert {row["row"] for row in rows} == set(BENCH_ROWS)
    table_lines = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table_lines) == 1 + len(rows)  # the header, then one line per row
    assert all(row["mmtok"] not in ("", "—") for row in rows)


def test_the_search_rows_return_the_peers_ids_and_beside_a_busy_process_too(smoke):
    _, report = smoke
    search = [row for row in report["rows"] if row["row"] == "search"]
    assert search and all(row["values"]["same_ids"] == 1.0 for row in search)
    assert all(row["values"][impl]["status"] == "ok" for row in search for impl in ("mmtok", "peer"))
    shared = next(row for row in report["rows"] if row["row"] == "search_shared")
    assert shared["values"]["mmtok"]["status"] == shared["values"]["mmtok_quiet"]["status"] == "ok"
    assert "another busy process" in shared["case"]


def test_every_family_is_encoded_and_decoded_in_fp32_and_bf16_with_counted_flops(smoke):
    _, report = smoke
    for direction in ("encode", "decode"):
        measured = [row["values"] for row in report["rows"] if row["row"] == direction]
        assert {(v["family"], v["precision"]) for v in measured} == {(f, p) for f in FAMILIES for p in ("fp32", "bf16")}
        assert all(v["flops"] > 0 and v["units_per_s"] > 0 for v in measured)
    trained = {row["values"]["family"] for row in report["rows"] if row["row"] == "train_step"}
    assert trained == FAMILIES


def test_the_processes_row_compares_one_and_two_processes_that_wrote_the_same_rows(smoke):
    _, report = smoke
    processes = [row for row in report["rows"] if row["row"] == "processes"]
    assert sorted(row["values"]["world_size"] for row in processes) == [1, 2]
    assert all("rows identical across all launches: yes" in row["note"] for row in processes)


def test_the_peers_are_the_published_models(smoke):
    _, report = smoke
    peers = {row["values"]["peer"] for row in report["rows"] if row["row"] == "peers"}
    for model in ("diffusers VQModel", "transformers EnCodec", "transformers DAC", "transformers Mimi"):
        assert any(name.startswith(model) for name in peers), model


def test_only_runs_the_rows_named(tmp_path):
    _, report = run_bench(tmp_path, "--only", "decode")
    assert {row["row"] for row in report["rows"]} == {"decode"}
    assert set(report["header"]["row_seconds"]) == {"decode"}
