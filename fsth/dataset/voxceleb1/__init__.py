"""VoxCeleb1 preprocessing: `sample_frame` (50 frames per video) and `extract_landmark` (metadata.pkl)."""
