"""LSR entry point: `python -m lsr.main --run_mode={train,eval,infer} ...` (flags: lsr.options).

- train: layout pre-training or meta-learning on the tfrecords, checkpoints and TensorBoard
  summaries in --train_dir, resuming from its latest checkpoint (or --warmup_checkpoint).
- eval:  K-shot reenactment of the standard test subset, io tuples in
  <train_dir>/val_set-K=<K>/ and L1 / PSNR / SSIM / loss means.
- infer: one source subject driven by one driver sequence (optionally fine-tuned first), io
  tuples in <train_dir>/inference/<src>--<drv>--K<KK>-<meta|ft>/; `--precision bf16` (or fp16 on
  a GPU) runs its networks in reduced precision.

The run modes themselves are library functions in `lsr.run`; this module only parses the flags
into a config and calls them with the original's folders.
"""

from __future__ import annotations

import sys

import tensorflow as tf
from absl import flags

from common.errors import InputError, cli_main
from lsr import engine, options, run

FLAGS = flags.FLAGS


@cli_main
def main(argv=None):
    """Parse the flags (absl) and run --run_mode; bad input exits with a one-line error."""
    argv = sys.argv if argv is None else argv
    if any(arg in ("-h", "--help", "--helpfull") for arg in argv[1:]):
        print(FLAGS.get_help())
        return 0
    FLAGS.unparse_flags()
    try:
        FLAGS(argv)
    except flags.Error as exc:
        raise InputError(str(exc)) from None
    print(f"TF.__version__ = {tf.__version__}")
    config = options.config_from_flags(FLAGS)
    options.validate_options(config)
    if config.precision != "fp32" and config.run_mode != "infer":
        raise InputError(f"--precision={config.precision} applies to --run_mode=infer only")
    if config.run_mode == "train":
        run.train(config, engine.make_strategy())
    elif config.run_mode == "eval":
        run.evaluate(config, config.train_dir, run.default_eval_dir(config), engine.make_strategy())
    elif config.run_mode == "infer":
        run.infer(config, config.train_dir, run.default_inference_dir(config))
    else:
        raise InputError(f"--run_mode={config.run_mode} is not one of train, eval, infer")


if __name__ == "__main__":
    main()
