"""boneaug.classify (see DESIGN.md)."""
