"""Dataset loaders and generators shared by the systems."""
