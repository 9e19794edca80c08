"""The emulation engine: sampler (who reads what), sample source, loop, ranks, and the `run` driver."""
