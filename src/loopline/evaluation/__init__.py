"""Model evaluation: metrics, slices, fairness, calibration, robustness, latency, reports."""
