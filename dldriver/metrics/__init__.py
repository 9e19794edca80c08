"""DLIO's metrics (formulas), the run folder writers (summary), system sampling and page-cache control."""
