"""Byte units, once: DLIO reports GB that are GiB (2^30) and MB that are MiB (2^20)."""
GiB = 1024**3
MiB = 1024**2
