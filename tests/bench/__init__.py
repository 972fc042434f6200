"""Tests of the benchmarks' pure helpers (bench/): what they parse and compute."""
