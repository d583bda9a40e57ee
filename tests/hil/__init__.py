"""Hardware-in-the-loop tests (pytest-embedded): a simulated board by default, a real one with --port."""
