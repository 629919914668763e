"""Two-process gloo DDP meta-training of the tiny config (torchrun): the replicas stay identical
and rank 0's checkpoint holds exactly what every rank holds."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from fsth.checkpoint import read_meta_checkpoint
from fsth.config import plain
from fsth.network import Generator

REPO = Path(__file__).resolve().parents[2]
# the block structure of conftest's TINY_VGG (the files tiny_config points at)
TINY_VGG = {
    "vgg19": dict(blocks=(2, 2, 4, 4, 4), mean_bgr=(103.939, 116.779, 123.68)),
    "vggface": dict(blocks=(2, 2, 3, 3, 3), mean_bgr=(93.5940, 104.7624, 129.1863)),
}

# Runs meta_train unchanged in each process; records the networks common.distributed's
# Process.wrap receives and saves their final state per rank.
WORKER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    from common import distributed
    from common.vgg.layouts import VGGArch
    from fsth import meta_train as mt
    from fsth.config import load_config
    from fsth.loss import Loss_EG_meta

    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(spec['out'])
    nets = []
    wrap = distributed.Process.wrap
    def recording_wrap(self, net):
        nets.append(net)
        return wrap(self, net)
    distributed.Process.wrap = recording_wrap
    cfg = load_config(None, **spec['config'])
    archs = {k: VGGArch(f'tiny_{k}', tuple(a['blocks']), 10, tuple(a['mean_bgr']), 'test',
                        widths=(4, 6, 8, 8, 8), fc_width=16) for k, a in spec['archs'].items()}
    loss = Loss_EG_meta.from_config(cfg, vgg19_arch=archs['vgg19'], vggface_arch=archs['vggface'])
    last = mt.meta_train(cfg, out / 'run', loss, max_steps=spec['steps'], seed=0)
    rank = dist.get_rank()
    torch.save({name: net.state_dict() for name, net in zip('GED', nets)}, out / f'rank{rank}.pt')
    if rank == 0:
        (out / 'checkpoint.txt').write_text(str(last))
    dist.barrier()
    dist.destroy_process_group()
""")


def test_two_process_gloo_replicas_match_checkpoint(tiny_config, tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    spec = {
        "out": str(tmp_path),
        "steps": 3,
        "config": {k: plain(v) for k, v in tiny_config.items()},
        "archs": {k: {"blocks": v["blocks"], "mean_bgr": v["mean_bgr"]} for k, v in TINY_VGG.items()},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(worker),
            str(tmp_path / "spec.json"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    ckpt = read_meta_checkpoint(Path((tmp_path / "checkpoint.txt").read_text()))
    assert ckpt.total_step == 2
    assert sorted(tmp_path.glob("run/save_*.pkl")) == [tmp_path / "run" / "save_2.pkl"]  # rank 0 only
    rows = (tmp_path / "run" / "log.txt").read_text().strip().splitlines()
    assert len(rows) == 3  # only rank 0 logs
    # exact: every rank applies the same all-reduced gradients (the same bits) to the same weights,
    # and the checkpoint is a save/load round trip
    for name, saved in zip("GED", (ckpt.G, ckpt.E, ckpt.D)):
        assert ranks[0][name].keys() == ranks[1][name].keys() == saved.keys()
        for key in saved:
            assert torch.equal(ranks[0][name][key], ranks[1][name][key]), f"{name}.{key} differs between ranks"
            assert torch.equal(ranks[0][name][key], saved[key]), f"{name}.{key} differs from the checkpoint"

    torch.manual_seed(0)  # meta_train's initialisation
    fresh = Generator(tiny_config["G_config"], tiny_config["embedding_dim"]).state_dict()
    assert any(not torch.equal(fresh[k], ckpt.G[k]) for k in fresh)  # training moved the weights
