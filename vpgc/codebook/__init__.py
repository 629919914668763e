"""VPGC stage 1: training (`vpgc.codebook.train`) and reconstructions (`vpgc.codebook.test`)."""
