"""The emulation engine: the `run` driver (training and checkpoint-only), the loop, ranks and barriers.

What a run reads, and in which order, is dldriver.dataset's (opening, source, sampler).
"""
