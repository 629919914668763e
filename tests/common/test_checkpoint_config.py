"""common.checkpoint and common.config: atomic saves, safe loads, strict reports, key checks."""

import pickle
from pathlib import Path

import pytest
import torch

from common import checkpoint as ck
from common.config import load_config, merge_config
from common.errors import CheckpointMismatchError, InputError


def test_save_is_atomic_and_roundtrips(tmp_path):
    path = ck.save_checkpoint({"w": torch.arange(4.0)}, tmp_path / "sub" / "a.pt")
    assert torch.equal(ck.load_checkpoint(path)["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]  # no temp file left behind


def test_failed_save_keeps_previous_file(tmp_path):
    path = ck.save_checkpoint({"step": 1}, tmp_path / "a.pt")
    with pytest.raises((pickle.PicklingError, AttributeError)):  # either, by Python version
        ck.save_checkpoint({"bad": lambda: 0}, path)  # lambdas cannot be pickled
    assert ck.load_checkpoint(path) == {"step": 1}
    assert len(list(tmp_path.iterdir())) == 1


def test_pickled_objects_need_explicit_trust(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"opt": Path("x")}, path)  # an arbitrary object, refused by weights_only
    with pytest.raises(InputError, match="trust_pickle"):
        ck.load_checkpoint(path)
    assert ck.load_checkpoint(path, trust_pickle=True)["opt"] == Path("x")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ck.load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"bad.pt: not a torch checkpoint \(neither torch.save's zip format") as error:
        ck.load_checkpoint(bad)
    assert "weights_only" not in str(error.value)  # torch's advice cannot help a file that is no checkpoint
    good = ck.save_checkpoint({"w": torch.zeros(1000)}, tmp_path / "good.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:2000])
    with pytest.raises(InputError, match=r"cut.pt: a damaged or truncated torch checkpoint \(its zip archive"):
        ck.load_checkpoint(tmp_path / "cut.pt")


def test_load_strict_reports_every_kind_of_mismatch():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    good = {f"module.{k}": torch.full_like(v, 0.5) for k, v in model.state_dict().items()}
    ck.load_strict(model, good)
    assert torch.all(model[0].weight == 0.5)

    bad = {k: v for k, v in model.state_dict().items() if k != "1.bias"}
    bad["0.weight"] = torch.zeros(5, 5)
    bad["extra"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as err:
        ck.load_strict(model, bad, source="x.pt")
    msg = str(err.value)
    assert "\n" not in msg
    assert "1 missing: 1.bias" in msg and "1 unexpected: extra" in msg
    assert "0.weight (5, 5) vs (3, 2)" in msg


def test_load_strict_ignores_prefixes_knowingly():
    model = torch.nn.Linear(2, 2)
    sd = dict(model.state_dict(), **{"jacobian.weight": torch.zeros(1)})
    ck.load_strict(model, sd, ignore=("jacobian.",))


DEFAULTS = {"model": {"depth": 4, "heads": 8}, "training": {"lr": 1e-4, "loss_weights": {"mse": 1.0}}}


def test_merge_config_overrides_and_rejects_unknown_keys():
    cfg = merge_config(DEFAULTS, {"model": {"depth": 2}})
    assert cfg["model"] == {"depth": 2, "heads": 8} and cfg["training"]["lr"] == 1e-4
    assert DEFAULTS["model"]["depth"] == 4  # defaults untouched
    with pytest.raises(InputError, match=r"unknown key 'model.dept' \(did you mean 'depth'\?\)"):
        merge_config(DEFAULTS, {"model": {"dept": 2}})
    open_cfg = merge_config(DEFAULTS, {"training": {"loss_weights": {"vgg": 2}}}, open_keys=("training.loss_weights",))
    assert open_cfg["training"]["loss_weights"] == {"vgg": 2}


def test_load_config_file_errors(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("model:\n  heads: 2\n")
    assert load_config(good, DEFAULTS)["model"]["heads"] == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [1, 2\n")
    with pytest.raises(InputError, match="broken.yaml: invalid YAML"):
        load_config(broken, DEFAULTS)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "none.yaml", DEFAULTS)


def test_missing_weights_say_where_the_official_file_comes_from(tmp_path):
    where = "the official files are on the authors' page; put them under checkpoints/x/"
    with pytest.raises(InputError, match=f"^{tmp_path}/w.pt: checkpoint file not found; {where}$"):
        ck.load_checkpoint(tmp_path / "w.pt", where=where)
    with pytest.raises(InputError, match=f"^no VGG weights given; {where}$"):
        ck.require_file(None, "VGG weights", where)
    (tmp_path / "w.pt").write_bytes(b"")
    assert ck.require_file(str(tmp_path / "w.pt"), "VGG weights", where) == tmp_path / "w.pt"
