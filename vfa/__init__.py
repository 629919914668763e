"""VFA (ACM MM 2023): Versatile Face Animator, driving 3D facial avatars in RGBD space."""
