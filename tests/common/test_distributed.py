"""common.distributed: one device convention, single-process runs unwrapped."""

import argparse

import pytest
import torch

from common import distributed
from common.errors import InputError


def test_device_names(monkeypatch):
    assert distributed.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.resolve_device(None) == torch.device("cpu")
    with pytest.raises(InputError, match="no CUDA GPU"):
        distributed.resolve_device("cuda:1")
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        distributed.resolve_device("gpu0")


def test_bare_cuda_is_this_processs_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.resolve_device(None) == torch.device("cuda", 3)
    assert distributed.resolve_device("cuda") == torch.device("cuda", 3)
    assert distributed.resolve_device("cuda:1") == torch.device("cuda", 1)


def test_one_process_wraps_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    process = distributed.start("cpu")
    assert (process.rank, process.world, process.is_main) == (0, 1, True)
    net = torch.nn.Linear(2, 2)
    assert process.wrap(net) is net and distributed.unwrap(net) is net
    assert distributed.current("cpu") == process


def test_unwrap_only_removes_parallel_wrappers():
    inner = torch.nn.Linear(2, 2)
    assert distributed.unwrap(torch.nn.DataParallel(inner)) is inner
    holder = torch.nn.Module()
    holder.module = inner  # a plain child that happens to be called `module`
    assert distributed.unwrap(holder) is holder


def test_device_flag():
    parser = argparse.ArgumentParser()
    distributed.add_device_argument(parser)
    assert parser.parse_args([]).device is None
    assert parser.parse_args(["--device", "cuda:1"]).device == "cuda:1"
