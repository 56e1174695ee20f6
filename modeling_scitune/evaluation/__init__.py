"""Benchmarks of the figure tasks the paper reports: figure-type classification and captioning."""
