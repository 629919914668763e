"""Device choice and torchrun / DistributedDataParallel wiring for every PyTorch command.

One convention for all commands: `--device cpu|cuda|cuda:N` (`add_device_argument`); without it a
process takes its own GPU (`LOCAL_RANK` under torchrun) when there is one, else the CPU. Launched
by `torchrun --nproc_per_node N`, a training command joins the process group (NCCL on GPUs, gloo
on CPUs) through `start`, wraps its networks with `Process.wrap` and reads their plain modules
back with `unwrap`; launched with plain `python` it is one process and nothing is wrapped.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

DEVICE_HELP = "cpu, cuda or cuda:N (default: this process's GPU, else the CPU)"


def add_device_argument(parser: argparse.ArgumentParser, flag: str = "--device") -> None:
    parser.add_argument(flag, dest="device", default=None, help=DEVICE_HELP)


def resolve_device(name=None):
    """A `torch.device` for cpu, cuda or cuda:N. No name, or a bare cuda, means this process's GPU
    (`LOCAL_RANK` under torchrun); no name and no GPU means the CPU."""
    import torch

    from common.errors import InputError

    if name is None and not torch.cuda.is_available():
        return torch.device("cpu")
    try:
        device = torch.device(name or "cuda")
    except RuntimeError:
        raise InputError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} asked for, but torch sees no CUDA GPU")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


@dataclass(frozen=True)
class Process:
    """This process's place in the run: rank, number of processes and device."""

    rank: int
    world: int
    device: object  # torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module):
        """`module` on this process's device, inside DistributedDataParallel when there are
        several processes."""
        from torch.nn.parallel import DistributedDataParallel

        module = module.to(self.device)
        if self.world == 1:
            return module
        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)


def start(device=None) -> Process:
    """Join the torchrun process group when `WORLD_SIZE` > 1 (once); always returns this process."""
    import torch
    import torch.distributed as dist

    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return Process(dist.get_rank(), dist.get_world_size(), device)
    return Process(0, 1, device)


def current(device=None) -> Process:
    """This process as the process group sees it, without joining one."""
    import torch.distributed as dist

    device = resolve_device(device)
    if dist.is_initialized():
        return Process(dist.get_rank(), dist.get_world_size(), device)
    return Process(0, 1, device)


def stop() -> None:
    """Leave the process group, if this process joined one."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def unwrap(module):
    """The plain module inside a DistributedDataParallel (or DataParallel) wrapper."""
    from torch.nn import DataParallel
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, (DistributedDataParallel, DataParallel)) else module
