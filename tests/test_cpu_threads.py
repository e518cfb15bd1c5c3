"""Threads per process: a process never runs more intra-op threads than its share of the CPUs."""

import os
import subprocess
import sys

import torch

from mmtok import cpu_threads


def test_cgroup_quota_is_read_in_cores_for_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_threads.cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_threads.cgroup_cpu_limit(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpu_threads.cgroup_cpu_limit(v1) == 3.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cpu_threads.cgroup_cpu_limit(v1) is None
    assert cpu_threads.cgroup_cpu_limit(tmp_path / "absent") is None


def test_quota_caps_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(cpu_threads.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(cpu_threads, "cgroup_cpu_limit", lambda: 2.5)
    assert cpu_threads.available_cpus() == 3
    monkeypatch.setattr(cpu_threads, "cgroup_cpu_limit", lambda: None)
    assert cpu_threads.available_cpus() == 16


def test_processes_on_one_machine_split_its_cpus_and_threads_are_never_raised(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(cpu_threads, "available_cpus", lambda: 8)
    try:
        torch.set_num_threads(8)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
        assert cpu_threads.limit_threads_per_process() == 2
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # one process may use 8, but 2 is not raised
        assert cpu_threads.limit_threads_per_process() == 2
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("LOCAL_WORLD_SIZE")
        monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "16")  # more processes than CPUs: one thread each
        assert cpu_threads.limit_threads_per_process() == 1
    finally:
        torch.set_num_threads(before)


def test_the_command_line_lets_openmp_threads_sleep_unless_the_user_chose():
    probe = "import os; from mmtok.cli import main; main(['quantizers']); print(os.environ['OMP_WAIT_POLICY'])"
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    chosen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert chosen.stdout.split()[-1] == "PASSIVE"
    kept = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**env, "OMP_WAIT_POLICY": "ACTIVE"})  # fmt: skip
    assert kept.stdout.split()[-1] == "ACTIVE"
