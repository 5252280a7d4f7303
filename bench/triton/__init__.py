"""The Triton benchmark (``python -m bench triton_bench``): setups, processes, levels, ratios."""
