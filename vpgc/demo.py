"""The original's demo command (`Reenactment/demo.sh` runs test_grid.py): `python -m vpgc.demo --data_root
Dataset/Obama -m Obama_self --load_path CKPT --encoder_path Enc.ckpt --implicit_path Imp.ckpt`.

The same command and flags as `python -m vpgc.reenact.test`; without `ldmks/test` the subject's
pre-drawn `heatmap/test` maps drive it, which is how the shipped demo data are laid out.
"""

from __future__ import annotations

from vpgc.reenact.test import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m vpgc.demo"))
