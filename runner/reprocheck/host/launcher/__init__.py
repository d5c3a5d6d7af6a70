"""The launcher: the one launch policy for the pinned image, the GitHub Action's step, `reprocheck docker`, derived
images. Standard library only: the Action's step imports it from a checkout, without reprocheck installed."""
