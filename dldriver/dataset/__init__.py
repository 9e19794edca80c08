"""What the data is: for now, the one comparison of what is stored against what the manifest says.

(Layout, the manifest and the sample source move here after the parallel work of this round is
merged; see docs/internals.md.)
"""
