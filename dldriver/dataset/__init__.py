"""What the data is: its layout and names, the manifest, the one compare of what is stored against what
should be (run start, resume, verify), verifying a dataset against its manifest, opening a dataset for
a run, the sample source every loader reads through, and the sampler that decides which samples each
rank visits and in which order.
"""
