"""What the benchmarks share (a package, so that `make bench` does not run it as one)."""
