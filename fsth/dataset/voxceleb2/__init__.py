"""VoxCeleb2 preprocessing: `clean_data` (drop empty clips) and `extract_frames` (20 frames per clip)."""
