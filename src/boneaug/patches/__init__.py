"""boneaug.patches (see DESIGN.md)."""
