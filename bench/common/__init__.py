"""What every benchmark shares: the machine, process figures (psutil), scoring, fixtures,
the server subprocess and the level search."""
