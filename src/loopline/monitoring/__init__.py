"""Monitoring: drift, integrity and performance over the prediction log; policies; alerts."""
