"""Few-Shot Adversarial Learning of Realistic Neural Talking Head Models (Zakharov et al. 2019),
faithful to the PyTorch re-implementation `bowen-xiao96/reenact` (folder `face/`).

Modules: `config` (the original's settings and layer strings), `components` (blocks),
`network` (G, E, D and their fine-tuning variants), `checkpoint` (the original's and our
checkpoint formats, meta -> fine-tuning state), `loss`, `dataset` (episodes), `meta_train`,
`finetune`, `infer` and `bench` (command-line entry points), `sample_demo` (the `make demo` step).
"""
