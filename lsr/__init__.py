"""LSR: Learned Spatial Representations for few-shot talking heads (Meshry et al., ICCV 2021).

TensorFlow 2 / Keras 2 re-implementation of `MoustafaMeshry/lsr` whose checkpoints (object-graph
paths written by `tf.train.Checkpoint`) restore unchanged. `options` holds the absl flags,
`layers` and `networks` the Keras building blocks, `models` the two model types,
`checkpoint` the checkpoint layouts of the original `main.py`, `run` the run modes (train,
evaluate, infer) as library functions and `main` their command line (the original's name).
"""
