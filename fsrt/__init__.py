"""FSRT: Facial Scene Representation Transformer (Rochow, Schwarz, Behnke, CVPR 2024).

`fsrt.model` holds the networks under the original's state-dict names, `fsrt.config` the
validated YAML configs (`fsrt/runs/*.yaml`), `fsrt.checkpoint` the official checkpoint layouts.
"""
