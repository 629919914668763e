"""VPGC: Efficient Video Portrait Reenactment via Grid-based Codebook (Wang et al., SIGGRAPH 2023)."""
