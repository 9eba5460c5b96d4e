"""The contract every fieldmon part shares: statuses, thresholds, results, the wire schema,
topic names and the inspection checklist catalogue.

Pure and dependency-light on purpose: both the agent (on customer hosts) and the collector
import it, and nothing here does I/O at import time.
"""
