"""Probes: one module per way of measuring (local host, SNMP, …).

A probe turns a target into :class:`Observation` objects; it never decides statuses from
thresholds (the scheduler does, with the catalogue) except when it cannot measure at all, in
which case it says UNKNOWN and why.
"""
