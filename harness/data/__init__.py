"""Eval data as users keep it: an .npz of (x, y), or a directory of images with a labels
CSV and a declared preprocessing recipe, turned on the host into the same (x, y)."""
