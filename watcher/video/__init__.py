"""Image to video (SPEC §8): the generator thread and the leaves it drives."""
