"""LSR preprocessing: landmark drawings of raw clips (`python -m lsr.preprocessing.landmarks`).

The oracle segmentation needs torch, so it lives outside `lsr`, in `tools/lsr_segmentation.py`.
"""
