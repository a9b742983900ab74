"""The built-in procedural demo dataset: look-alike families of printed objects photographed by
several cameras, with noise added (generate: the demo stage's call; render, scene, noise: its
parts; check: the calibration measures)."""
