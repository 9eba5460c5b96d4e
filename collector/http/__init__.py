"""The collector's HTTP side: health, Prometheus metrics, the incident API."""
