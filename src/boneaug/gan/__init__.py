"""boneaug.gan (see DESIGN.md)."""
