"""Reports of meta-runs and ablations: honest statistics, plots and one self-contained HTML page."""
