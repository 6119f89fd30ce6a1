"""Thread counts chosen by the program: any core count, busy cores left alone, the user's setting wins."""

import os

import pytest
import torch

import main
from core import threads


@pytest.mark.parametrize(
    ("cores", "busy", "processes", "want"),
    [
        (1, 0.0, 1, 1),
        (2, 0.0, 1, 2),
        (2, 1.2, 1, 1),
        (2, 15.0, 1, 1),
        (16, 3.0, 1, 13),
        (16, 0.0, 4, 4),
        (64, 0, 1, 64),
    ],
)
def test_threads_leave_busy_cores_alone_on_any_machine(cores, busy, processes, want):
    assert threads.choose_threads(cores, busy, processes) == want


@pytest.fixture
def clean_env(monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LCA_THREADS")}
    env.pop("OMP_WAIT_POLICY", None)
    monkeypatch.setattr(os, "environ", env)
    before = torch.get_num_threads()
    yield env
    torch.set_num_threads(before)


def test_configure_threads_sets_openmp_and_torch(clean_env, monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)  # another job holds one of the two cores
    assert threads.configure_threads() == 1
    assert clean_env["OMP_NUM_THREADS"] == "1" and clean_env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert torch.get_num_threads() == 1


def test_the_users_thread_setting_wins(clean_env, monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    clean_env["LCA_THREADS"] = "3"
    assert threads.configure_threads() == 3 and clean_env["OMP_NUM_THREADS"] == "3"
    del clean_env["LCA_THREADS"], clean_env["OMP_NUM_THREADS"]
    clean_env["OMP_NUM_THREADS"] = "2"
    assert threads.configure_threads() == 2


def test_every_command_line_entry_chooses_threads(clean_env, monkeypatch, capsys):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    assert main.main(["info"]) == 0
    assert clean_env["OMP_NUM_THREADS"] == "2" and torch.get_num_threads() == 2


def test_loader_workers_fit_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert threads.loader_workers(4) == 1 and threads.loader_workers(0) == 0
    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    assert threads.loader_workers(2) == 0


def test_a_thread_setting_that_is_not_a_number_is_ignored(clean_env, monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    clean_env["LCA_THREADS"] = "many"
    assert threads.configure_threads() == 2
