"""Evaluation and fitting harnesses: they render the synthetic world, track or fit it, and score or build what the
runtime packages use (tracking accuracy, the face template, the face regressor, the bundled example inputs).
Above every other core package; nothing at run time imports it."""
