"""boneaug.synth (see DESIGN.md)."""
