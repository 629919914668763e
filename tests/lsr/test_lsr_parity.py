"""Same weights and inputs give the original code's outputs.

data/original_outputs.npz was computed by the original `MoustafaMeshry/lsr` (a9a6643; TF
2.15.1 with the fact sheet's Conv2DScaled patch) for `small_options`, K=2, batch 2, with every
variable set to `keyed_value(<its checkpoint key>)` and inputs drawn from RandomState(2021).
Here those weights reach our model through a checkpoint, so the keys are checked too.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsr import checkpoint

GOLDEN = Path(__file__).parent / 'data' / 'original_outputs.npz'
_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'


def test_forward_pass_equals_the_original(build_model, small_options, keyed_value,
                                          write_checkpoint, tmp_path):
    model = build_model(**small_options)
    keys = checkpoint.checkpoint_keys(checkpoint.build_checkpoint(model, 'eval'))
    values = {k[:-len(_SUFFIX)]: keyed_value(k[:-len(_SUFFIX)], tuple(spec.shape))
              for k, spec in keys.items()}
    checkpoint.load_model(model, write_checkpoint(tmp_path / 'ckpt-1', values), 'eval')

    rng = np.random.RandomState(2021)
    frames = rng.uniform(-1, 1, (2, 2, 32, 32, 6)).astype(np.float32)
    landmarks = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    out = model.process(frames, landmarks, training=False)
    scales = model.discriminator(out['output'], landmarks, training=False)
    ours = {'z_style': out['latents'][0], 'z_layout': out['latents'][1],
            'segmap_logits_sub2': out['segmap_logits'][:, ::2, ::2],
            'aux_frame_recon': out['aux_frame_recon'], 'output': out['output']}
    for i, maps in enumerate(scales):
        ours[f'disc_{i}_logits'], ours[f'disc_{i}_features'] = maps[-1], maps[-2]

    golden = np.load(GOLDEN)
    for name, value in ours.items():
        np.testing.assert_allclose(np.asarray(value), golden[name], rtol=1e-5, atol=1e-5,
                                   err_msg=name)
    # argmax may only flip on exact ties, so allow a pixel or two on other CPUs.
    labels = np.asarray(out['segmap_label_map'])
    assert np.mean(labels != golden['segmap_label_map']) < 1e-3
