"""CodebookMonitor against hand-computed values, and across 2 gloo processes."""

import math

import pytest
import torch
from two_process import WORLD_SIZE, run_two_processes

from mmtok.health import CodebookMonitor, describe_use, uniform_utilization


def test_uniform_over_a_quarter_of_the_codebook():
    monitor = CodebookMonitor(1024)
    monitor.update(torch.arange(256).repeat(8)[:, None])
    [stats] = monitor.compute()
    assert stats["utilization"] == pytest.approx(0.25)
    assert stats["perplexity"] == pytest.approx(256, rel=1e-9)
    assert stats["entropy_bits"] == pytest.approx(8.0)
    assert stats["dead_codes"] == 768
    assert stats["top_share"] == pytest.approx(1 / 256)
    assert monitor.alarms([stats]) == []


def test_use_is_judged_against_what_uniform_draws_of_the_same_window_show():
    # The figures: 21,888 tokens over 15,360 codes can show at most ~76 % of them.
    assert uniform_utilization(21_888, 15_360) == pytest.approx(1 - (1 - 1 / 15_360) ** 21_888, rel=1e-12)
    assert uniform_utilization(21_888, 15_360) == pytest.approx(0.7595, abs=1e-3)
    assert uniform_utilization(0, 64) == 0.0 and uniform_utilization(5, 1) == 1.0
    # Uniform random draws score about 100 % of uniform; a quarter of the codes in turn far less.
    generator = torch.Generator().manual_seed(0)
    uniform = CodebookMonitor(4096)
    uniform.update(torch.randint(4096, (4096, 1), generator=generator))
    [drawn] = uniform.compute()
    assert drawn["use_vs_uniform"] == pytest.approx(1.0, abs=0.03)
    assert drawn["codebook_size"] == 4096 and drawn["perplexity_share"] > 0.4
    quarter = CodebookMonitor(4096)
    quarter.update(torch.arange(1024).repeat(4)[:, None])
    [stats] = quarter.compute()
    assert stats["use_vs_uniform"] == pytest.approx(0.25 / uniform_utilization(4096, 4096))
    assert stats["perplexity_share"] == pytest.approx(0.25)
    line = describe_use(stats)
    assert "25.0% of 4,096 codes" in line and f"{stats['use_vs_uniform']:.0%} of the 63.2%" in line


def test_single_code_collapses_and_raises_the_alarm():
    monitor = CodebookMonitor(1024)
    monitor.update(torch.full((500, 1), 7))
    [stats] = monitor.compute()
    assert stats["perplexity"] == pytest.approx(1.0)
    assert stats["top_share"] == 1.0
    alarms = monitor.alarms([stats])
    assert {a.metric for a in alarms} == {"utilization", "perplexity"}
    assert "codebook 0" in str(alarms[0])


def test_several_codebooks_counts_accumulate_and_reset():
    monitor = CodebookMonitor([4, 8], num_codebooks=2)
    monitor.update(torch.tensor([[0, 0], [1, 7]]))
    monitor.update(torch.tensor([[1, -1]]))  # -1: codebook dropped by quantizer dropout
    first, second = monitor.compute()
    assert first["total"] == 3 and first["utilization"] == pytest.approx(0.5)
    assert first["perplexity"] == pytest.approx(math.exp(-(1 / 3) * math.log(1 / 3) - (2 / 3) * math.log(2 / 3)))
    assert second["total"] == 2 and second["dead_codes"] == 6
    assert monitor.log_dict()["codebook/1/dead_codes"] == 6
    monitor.reset()
    assert monitor.compute()[0]["total"] == 0


def test_bad_ids_are_a_clear_error():
    monitor = CodebookMonitor(16, num_codebooks=2)
    with pytest.raises(ValueError, match="expected ids"):
        monitor.update(torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        monitor.update(torch.tensor([[16, 0]]))


def _monitor_worker(rank, all_ids):
    import torch.distributed as dist

    monitor = CodebookMonitor(64, num_codebooks=2)
    monitor.update(all_ids[rank])
    return dist.get_world_size(), monitor.compute()


def test_compute_reduces_counts_across_two_processes():
    generator = torch.Generator().manual_seed(0)
    all_ids = [
        torch.randint(0, 40, (300, 2), generator=generator),
        torch.randint(20, 64, (200, 2), generator=generator),
    ]
    results = run_two_processes(_monitor_worker, all_ids)
    single = CodebookMonitor(64, num_codebooks=2)
    for ids in all_ids:
        single.update(ids)
    expected = single.compute()
    for world, stats in results:
        assert world == WORLD_SIZE
        for got, want in zip(stats, expected):
            assert got == pytest.approx(want)
    assert expected[0]["total"] == 500
