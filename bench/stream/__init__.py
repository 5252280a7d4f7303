"""Streaming in this process: the simulation and latency definitions, accuracy, the
latency/accuracy grid, compute, engine capacity, tuning, gates under noise and the LM."""
