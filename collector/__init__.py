"""The fieldmon collector: ingests agents' results, keeps incidents and their clocks, and
produces inspection reports and Prometheus metrics for the maintenance centre."""
