"""common.precision: the fp16-on-CPU refusal, the emulated-bf16 warning, autocast dtypes, frame_agreement."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from common import precision
from common.errors import InputError
from common.precision import PRECISIONS, add_precision_argument, autocast, check_precision, frame_agreement


def test_flag_defaults_to_float32_and_offers_every_precision():
    parser = argparse.ArgumentParser()
    add_precision_argument(parser)
    assert parser.parse_args([]).precision == "fp32"
    assert all(parser.parse_args(["--precision", p]).precision == p for p in PRECISIONS)
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "int8"])


def test_fp16_is_refused_on_the_cpu_only():
    with pytest.raises(InputError, match="bf16"):
        check_precision("fp16", torch.device("cpu"))
    check_precision("fp16", "cuda:1")
    check_precision("bf16", "cpu")
    with pytest.raises(InputError, match="int8"):
        check_precision("int8", "cpu")


def test_autocast_runs_matrix_products_at_the_precision_asked():
    a, b = torch.rand(4, 4), torch.rand(4, 4)
    with autocast("fp32", "cpu"):
        assert (a @ b).dtype == torch.float32
    with autocast("bf16", torch.device("cpu")):
        assert (a @ b).dtype == torch.bfloat16
    assert (a @ b).dtype == torch.float32  # the context ends with the block


def test_frame_agreement_counts_8_bit_levels():
    frames = np.zeros((2, 4, 4, 3))
    assert frame_agreement(frames, frames) == {"psnr_db": float("inf"), "max_levels": 0}
    moved = frames.copy()
    moved[0, 0, 0, 0] = 3 / 255  # one value of 96 off by 3 levels: MSE = 9 / 96
    agreement = frame_agreement(torch.from_numpy(frames), moved)
    assert agreement["max_levels"] == 3
    assert agreement["psnr_db"] == pytest.approx(10 * np.log10(255**2 * 96 / 9))
    # values are clamped to [0, 1] first, as when they are written as images
    assert frame_agreement(frames - 1, frames + 0.1 / 255)["max_levels"] == 0
    with pytest.raises(ValueError, match="shapes"):
        frame_agreement(frames, frames[0])


X86_CPUINFO = """processor\t: 0
model name\t: Some Xeon
flags\t\t: fpu sse avx2 avx512f avx512bw {extra}

processor\t: 1
flags\t\t: fpu sse avx2 avx512f avx512bw {extra}
"""
ARM_CPUINFO = "processor\t: 0\nFeatures\t: fp asimd sve {extra}\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize("template", [X86_CPUINFO, ARM_CPUINFO])
def test_cpu_flags_are_read_from_x86_and_arm_listings(tmp_path, template):
    listing = tmp_path / "cpuinfo"
    listing.write_text(template.format(extra=""))
    flags = precision.cpu_flags(listing)
    assert flags and not flags & precision.NATIVE_BF16_FLAGS and ("avx512f" in flags or "asimd" in flags)
    listing.write_text(template.format(extra="avx512_bf16" if "flags" in template else "bf16"))
    assert precision.cpu_flags(listing) & precision.NATIVE_BF16_FLAGS
    assert precision.cpu_flags(tmp_path / "missing") is None
    listing.write_text("processor\t: 0\n")  # a listing without flags tells nothing either
    assert precision.cpu_flags(listing) is None


@pytest.mark.parametrize("native", [False, True, None])
def test_bf16_on_a_cpu_without_bfloat16_instructions_warns_once(monkeypatch, capsys, native):
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    precision._warn_emulated_bf16.cache_clear()
    for _ in range(3):
        check_precision("bf16", "cpu")
        with autocast("bf16", "cpu"):
            pass
    check_precision("fp32", "cpu")
    err = capsys.readouterr().err
    if native is False:
        assert err.startswith("warning:") and err.count("\n") == 1 and "bfloat16 instructions" in err
    else:  # has them, or unknown (no /proc/cpuinfo): say nothing
        assert err == ""
    precision._warn_emulated_bf16.cache_clear()
    check_precision("bf16", "cuda:0")
    assert capsys.readouterr().err == ""
