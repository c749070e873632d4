import os

import pytest
import torch

from mmreid.utils import threads


def fake_cgroup(tmp_path, monkeypatch, proc_lines, files):
    """A cgroup tree under tmp_path: ``files`` maps paths to contents."""
    proc = tmp_path / 'proc_cgroup'
    proc.write_text('\n'.join(proc_lines) + '\n')
    root = tmp_path / 'cgroup'
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    monkeypatch.setattr(threads, '_PROC_CGROUP', str(proc))
    monkeypatch.setattr(threads, '_CGROUP_ROOT', str(root))


def test_cgroup_v2_quota_of_a_parent_applies(tmp_path, monkeypatch):
    fake_cgroup(
        tmp_path, monkeypatch, ['0::/jobs/job1'], {
            'jobs/job1/cpu.max': 'max 100000\n',
            'jobs/cpu.max': '150000 100000\n',
            'cpu.max': 'max 100000\n',
        })
    assert threads.cgroup_cpu_quota() == 1.5
    # 1.5 CPUs keep 2 threads busy, never more than the affinity allows.
    expected = min(2, len(os.sched_getaffinity(0)))
    assert threads.usable_cpu_count() == expected


def test_cgroup_v1_quota(tmp_path, monkeypatch):
    fake_cgroup(
        tmp_path, monkeypatch, ['4:memory:/a', '3:cpu,cpuacct:/docker/abc'], {
            'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '50000\n',
            'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n',
        })
    assert threads.cgroup_cpu_quota() == 0.5
    assert threads.usable_cpu_count() == 1


def test_no_quota(tmp_path, monkeypatch):
    fake_cgroup(tmp_path, monkeypatch, ['0::/'], {'cpu.max': 'max 100000'})
    assert threads.cgroup_cpu_quota() is None
    assert threads.usable_cpu_count() == len(os.sched_getaffinity(0))


def test_thread_count_honours_torch_setting(monkeypatch):
    monkeypatch.setattr(threads, 'usable_cpu_count', lambda: 3)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert threads.compute_thread_count() == 1
        torch.set_num_threads(8)
        assert threads.compute_thread_count() == 3
    finally:
        torch.set_num_threads(previous)


def test_torch_threads_restores_the_count():
    previous = torch.get_num_threads()
    with threads.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == previous
    with pytest.raises(RuntimeError):
        with threads.torch_threads(1):
            raise RuntimeError('inside')
    assert torch.get_num_threads() == previous


def test_the_tightest_quota_of_the_cgroup_and_its_parents_wins(
        tmp_path, monkeypatch):
    fake_cgroup(
        tmp_path, monkeypatch, ['0::/jobs/job1'], {
            'jobs/job1/cpu.max': '100000 100000\n',
            'jobs/cpu.max': '200000 100000\n',
        })
    assert threads.cgroup_cpu_quota() == 1.0


def test_cgroup_v1_mounted_as_cpu(tmp_path, monkeypatch):
    # No cpu,cpuacct folder: the controller is mounted at cpu/.
    fake_cgroup(
        tmp_path, monkeypatch, ['3:cpu,cpuacct:/docker/abc'], {
            'cpu/docker/abc/cpu.cfs_quota_us': '150000\n',
            'cpu/docker/abc/cpu.cfs_period_us': '100000\n',
        })
    assert threads.cgroup_cpu_quota() == 1.5
