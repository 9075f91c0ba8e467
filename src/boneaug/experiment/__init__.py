"""boneaug.experiment (see DESIGN.md)."""
