"""`python main.py install` on a machine without torch: PyTorch's CPU index, else the machine's pip configuration."""

import logging
import subprocess

import pytest

import main


class Pip:
    """Records pip commands instead of running them; `fail_index` makes the CPU-index install fail."""

    def __init__(self, fail_index: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail_index = fail_index

    def call(self, cmd, **kw) -> int:
        self.calls.append(list(cmd))
        return 1 if self.fail_index and "--index-url" in cmd else 0

    def check_call(self, cmd, **kw) -> int:
        if self.call(cmd, **kw):
            raise subprocess.CalledProcessError(1, cmd)
        return 0


@pytest.fixture
def pip(monkeypatch):
    def make(*, reachable: bool, fail_index: bool = False) -> Pip:
        fake = Pip(fail_index)
        monkeypatch.setattr(main.subprocess, "call", fake.call)
        monkeypatch.setattr(main.subprocess, "check_call", fake.check_call)
        monkeypatch.setattr(main, "index_reachable", lambda url, timeout=10.0: reachable)
        return fake

    return make


def _torch_installs(fake: Pip) -> list[list[str]]:
    return [c for c in fake.calls if main.TORCH in c]


def test_cpu_torch_comes_from_pytorchs_cpu_index(pip, caplog):
    fake = pip(reachable=True)
    with caplog.at_level(logging.INFO, logger="install"):
        assert main.install_torch(cpu=True) == "pytorch-cpu-index"
    (cmd,) = _torch_installs(fake)
    assert cmd[cmd.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert "from PyTorch's CPU index" in caplog.text


def test_an_unreachable_cpu_index_falls_back_to_the_machines_pip_configuration(pip, caplog):
    fake = pip(reachable=False)
    with caplog.at_level(logging.INFO, logger="install"):
        assert main.install_torch(cpu=True) == "pip-config"
    (cmd,) = _torch_installs(fake)
    assert "--index-url" not in cmd and cmd[-1] == main.TORCH
    assert "cannot be reached" in caplog.text and "own pip configuration" in caplog.text


def test_a_failing_cpu_index_install_falls_back_too(pip, caplog):
    fake = pip(reachable=True, fail_index=True)
    with caplog.at_level(logging.INFO, logger="install"):
        assert main.install_torch(cpu=True) == "pip-config"
    first, second = _torch_installs(fake)
    assert "--index-url" in first and "--index-url" not in second


def test_install_command_without_torch_uses_the_cpu_index_then_installs_the_project(pip, monkeypatch):
    fake = pip(reachable=True)
    real_find_spec = main.importlib.util.find_spec
    monkeypatch.setattr(main.importlib.util, "find_spec", lambda n: None if n == "torch" else real_find_spec(n))
    assert main.main(["install"]) == 0
    torch_cmd = _torch_installs(fake)[0]
    assert "--index-url" in torch_cmd
    assert any("-e" in c and str(main.ROOT) in c[-1] for c in fake.calls)  # then the project itself


def test_a_machine_with_torch_keeps_it(pip):
    fake = pip(reachable=True)
    assert main.main(["install"]) == 0
    assert not _torch_installs(fake)
