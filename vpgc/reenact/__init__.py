"""VPGC stage 2: training (`vpgc.reenact.train`) and inference (`vpgc.reenact.test`) of the landmark-driven module."""
