"""MLPerf Storage mode: dataset and checkpoint sizing, the rules as data per edition, verdicts.

Pure functions over workloads, run folders' summaries and the edition tables; the command line lives in
dldriver/mlperf/command.py.
"""
